//! Characters that a server which normalises paths reads as a separator, a dot, a space or a
//! `;`: the look-alikes of the segment rule of [`super::upstream_url`], which refuses dot
//! segments (RFC 3986 §5.2.4 would climb out of the base) and separators in any spelling.
//!
//! Some servers and frameworks apply Unicode's compatibility normalization, NFKC (Unicode
//! Standard Annex #15, "Unicode Normalization Forms"), to a decoded path before they route it:
//! `‥` (U+2025) becomes `..`, `﹨` (U+FE68) becomes `\`, `；` (U+FF1B) becomes `;` and a
//! no-break space (U+00A0) becomes a space. The segment rule is stated on that NFKC form; the
//! wasm builds cannot afford normalization tables, so the few characters that matter are
//! listed, with what NFKC makes of them, in the generated table of `lookalikes/table.rs`
//! (which names the Unicode version it was derived from). Its tests
//! (`lookalikes/tests.rs`) derive it again from the `unicode-normalization` crate over every
//! Unicode scalar value and fail, printing the new table, when it differs;
//! `TOKENGATE_REGENERATE_LOOKALIKES=1 cargo test -p tokengate lookalikes` writes it (then run the
//! tests again).
//!
//! NFKC never puts one of these ASCII characters into a string except as the NFKC form of a
//! single character (they are starters that compose with nothing, and canonical reordering
//! moves no starter), so reading a segment character by character through [`skeleton`] and
//! applying the ASCII rule to the result is the rule on the segment's NFKC form; the tests of
//! `path.rs` check this against `unicode-normalization` for every scalar value in many
//! positions.

mod table;

use std::cmp::Ordering;

/// What NFKC makes of a character, as far as the segment rule is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// Its NFKC form holds `/` or `\` (U+FF0F `／` → `/`, U+2100 `℀` → `a/c`): a separator,
    /// wherever it is in the segment.
    Separator,
    /// Its NFKC form is one or more `.` and nothing else (U+FF0E `．` → `.`, U+2025 `‥` → `..`).
    Dots,
    /// Its NFKC form is one or more spaces and nothing else (U+00A0, U+3000 → ` `): trimmed at
    /// the end of a dot segment like a space.
    Spaces,
    /// Its NFKC form starts with `;` (U+FF1B `；`, U+037E → `;`): what follows is path
    /// parameters, which some servers drop before they look for a dot segment.
    Semicolon,
    /// Its NFKC form holds a `.` among other characters (U+2488 `⒈` → `1.`, U+33C2 `㏂` →
    /// `a.m.`): it reads as ordinary text, like any character the table does not list.
    DotInText,
}

/// Look-alikes of `/` that NFKC leaves alone, refused as separators all the same: an addendum to
/// the derived table, not derived from Unicode data. U+2215 DIVISION SLASH, which Windows
/// "best-fit" code-page mappings turn into `/`, and U+29F8 BIG SOLIDUS, its visual twin.
pub(super) const SEPARATOR_ADDENDUM: [char; 2] = ['\u{2215}', '\u{29F8}'];

/// The class of `c`: the table's (found by binary search over its sorted ranges), or
/// [`Class::Separator`] for the [`SEPARATOR_ADDENDUM`]; `None` for ordinary text.
pub(super) fn class(c: char) -> Option<Class> {
    if SEPARATOR_ADDENDUM.contains(&c) {
        return Some(Class::Separator);
    }
    table::TABLE
        .binary_search_by(|&(first, last, _)| {
            if last < c {
                Ordering::Less
            } else if first > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .ok()
        .map(|i| table::TABLE[i].2)
}

/// The ASCII character that stands for `c` in the segment rule: `/` for a separator, `.` for
/// dots, ` ` for spaces, `;` for a semicolon, and `c` itself for anything else (which is then
/// none of these). The segment rule applied to the skeleton of a segment is the rule applied
/// to its NFKC form (UAX #15), with the [`SEPARATOR_ADDENDUM`] read as `/`.
pub(super) fn skeleton(c: char) -> char {
    match class(c) {
        Some(Class::Separator) => '/',
        Some(Class::Dots) => '.',
        Some(Class::Spaces) => ' ',
        Some(Class::Semicolon) => ';',
        Some(Class::DotInText) | None => c,
    }
}

#[cfg(test)]
mod tests;
