//! The look-alike table is derived, not hand-picked: these tests derive it again from the NFKC
//! forms (Unicode Standard Annex #15) that the `unicode-normalization` crate computes for every
//! Unicode scalar value, and compare.
//!
//! When Unicode (or the crate) changes, `table_is_derived_from_nfkc` fails and prints the new
//! `src/proxy/lookalikes/table.rs`; paste it, or have the test write it:
//!
//! ```sh
//! TOKENGATE_REGENERATE_LOOKALIKES=1 cargo test -p tokengate lookalikes
//! ```
//!
//! then review the diff and run the tests again. A character whose NFKC form no [`Class`]
//! reads exactly (text before a `;`, dots mixed with spaces only, a control character) fails
//! the derivation with its code point: the classes and the segment rule need extending first.

use super::table::TABLE;
use super::*;
use unicode_normalization::UnicodeNormalization;

/// The environment variable that makes [`table_is_derived_from_nfkc`] write the table it
/// derives over the committed one when they differ.
const REGENERATE: &str = "TOKENGATE_REGENERATE_LOOKALIKES";

/// The generated file, from the crate root.
const TABLE_FILE: &str = "src/proxy/lookalikes/table.rs";

fn nfkc(c: char) -> String {
    c.nfkc().collect()
}

fn scalar_values() -> impl Iterator<Item = char> {
    (0..=char::MAX as u32).filter_map(char::from_u32)
}

/// The class of `c` by its NFKC form `n`, `None` for ordinary text. Panics on a form that no
/// class reads exactly.
fn derive(c: char, n: &str) -> Option<Class> {
    let at = format!("U+{:04X} (NFKC {n:?})", c as u32);
    assert!(!n.is_empty(), "{at}: an empty NFKC form");
    assert!(
        c.is_control() || !n.chars().any(char::is_control),
        "{at}: NFKC makes a control character, which the check of the decoded text misses"
    );
    if n.contains(['/', '\\']) {
        return Some(Class::Separator);
    }
    if let Some((before, _)) = n.split_once(';') {
        assert!(
            before.is_empty(),
            "{at}: text before a `;`, which no class reads exactly"
        );
        return Some(Class::Semicolon);
    }
    if n.chars().all(|d| d == '.') {
        return Some(Class::Dots);
    }
    if n.chars().all(|d| d == ' ') {
        return Some(Class::Spaces);
    }
    // Any other character in the form makes it ordinary text wherever it stands, unless the
    // form is only dots and spaces (`. .`, `. `), which would need a class of its own.
    assert!(
        n.chars().any(|d| d != '.' && d != ' '),
        "{at}: dots and spaces mixed, which no class reads exactly"
    );
    n.contains('.').then_some(Class::DotInText)
}

/// The table derived from NFKC: runs of consecutive code points with the same class.
fn derived_table() -> Vec<(char, char, Class)> {
    let mut table: Vec<(char, char, Class)> = Vec::new();
    for c in scalar_values() {
        let Some(class) = derive(c, &nfkc(c)) else {
            continue;
        };
        match table.last_mut() {
            Some((_, last, k)) if *k == class && *last as u32 + 1 == c as u32 => *last = c,
            _ => table.push((c, c, class)),
        }
    }
    table
}

/// The source of `table.rs` for `table`.
fn render(table: &[(char, char, Class)]) -> String {
    let (major, minor, update) = unicode_normalization::UNICODE_VERSION;
    let count = |k: Class| -> u32 {
        table
            .iter()
            .filter(|e| e.2 == k)
            .map(|&(first, last, _)| last as u32 - first as u32 + 1)
            .sum()
    };
    let classes = [
        Class::Separator,
        Class::Dots,
        Class::Spaces,
        Class::Semicolon,
        Class::DotInText,
    ];
    let total: u32 = classes.iter().map(|&k| count(k)).sum();
    let counts = classes
        .iter()
        .map(|&k| format!("{k:?} {}", count(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!(
        "//! Generated: the characters whose NFKC form (Unicode Standard Annex #15) holds `.`, `/`,\n\
         //! `\\`, `;` or is only spaces, with their [`Class`], derived from Unicode {major}.{minor}.{update} by\n\
         //! the `unicode-normalization` crate over every Unicode scalar value. Do not edit: the\n\
         //! tests in `tests.rs` derive it again and print (or write) the new file when it differs.\n\
         //!\n\
         //! {total} code points in {} ranges: {counts}.\n\
         \n\
         use super::Class::{{self, *}};\n\
         \n\
         /// Sorted, disjoint, inclusive ranges of code points and their class, each with its NFKC\n\
         /// form (that of the first and the last code point of a range).\n\
         pub(super) const TABLE: &[(char, char, Class)] = &[\n",
        table.len()
    );
    // Each entry with its NFKC form in a comment, the comments aligned as rustfmt aligns them.
    let entries: Vec<(String, String)> = table
        .iter()
        .map(|&(first, last, class)| {
            let (a, b) = (nfkc(first), nfkc(last));
            let nfkc_of = match last as u32 - first as u32 + 1 {
                1 => format!("{a:?}"),
                n if a == b => format!("{a:?} ({n} code points)"),
                n => format!("{a:?} to {b:?} ({n} code points)"),
            };
            let entry = format!(
                "('\\u{{{:04X}}}', '\\u{{{:04X}}}', {class:?}),",
                first as u32, last as u32
            );
            (entry, nfkc_of)
        })
        .collect();
    let width = entries.iter().map(|(e, _)| e.len()).max().unwrap_or(0);
    for (entry, nfkc_of) in entries {
        s.push_str(&format!("    {entry:width$} // {nfkc_of}\n"));
    }
    s.push_str("];\n");
    s
}

#[test]
fn table_is_derived_from_nfkc() {
    let source = render(&derived_table());
    if source == include_str!("table.rs") {
        return;
    }
    let written = std::env::var(REGENERATE).as_deref() == Ok("1");
    if written {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(TABLE_FILE);
        std::fs::write(&path, &source).expect("write the look-alike table");
    }
    let next = if written {
        "it is written now: review the diff and run the tests again".to_string()
    } else {
        format!("paste the source below, or run the tests with {REGENERATE}=1 to write it")
    };
    panic!("{TABLE_FILE} is not the table derived from NFKC; {next}:\n\n{source}");
}

#[test]
fn table_is_sorted_and_disjoint() {
    assert!(!TABLE.is_empty());
    for &(first, last, _) in TABLE {
        assert!(first <= last, "{first:?} > {last:?}");
    }
    for pair in TABLE.windows(2) {
        assert!(
            pair[0].1 < pair[1].0,
            "{:?} overlaps {:?}",
            pair[0],
            pair[1]
        );
    }
}

/// The lookup (binary search and addendum), not only the table's text, for every scalar value.
#[test]
fn every_scalar_value_has_the_class_of_its_nfkc_form() {
    for c in scalar_values() {
        let want = if SEPARATOR_ADDENDUM.contains(&c) {
            Some(Class::Separator)
        } else {
            derive(c, &nfkc(c))
        };
        assert_eq!(class(c), want, "U+{:04X}", c as u32);
    }
}

/// The addendum is what NFKC leaves alone: not a copy of derived entries.
#[test]
fn the_addendum_is_outside_nfkc() {
    for c in SEPARATOR_ADDENDUM {
        assert_eq!(nfkc(c), c.to_string(), "U+{:04X}", c as u32);
        assert_eq!(derive(c, &nfkc(c)), None, "U+{:04X}", c as u32);
        assert_eq!(skeleton(c), '/');
    }
}

#[test]
fn skeletons_of_a_few_lookalikes() {
    for (c, want) in [
        ('\u{2025}', '.'),
        ('\u{FE30}', '.'),
        ('\u{FF0E}', '.'),
        ('\u{FE68}', '/'),
        ('\u{2100}', '/'),
        ('\\', '/'),
        ('\u{00A0}', ' '),
        ('\u{3000}', ' '),
        ('\u{FF1B}', ';'),
        ('\u{037E}', ';'),
        ('\u{2488}', '\u{2488}'),
        ('a', 'a'),
        ('\u{1680}', '\u{1680}'),
    ] {
        assert_eq!(skeleton(c), want, "U+{:04X}", c as u32);
    }
}
