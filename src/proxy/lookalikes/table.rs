//! Generated: the characters whose NFKC form (Unicode Standard Annex #15) holds `.`, `/`,
//! `\`, `;` or is only spaces, with their [`Class`], derived from Unicode 18.0.0 by
//! the `unicode-normalization` crate over every Unicode scalar value. Do not edit: the
//! tests in `tests.rs` derive it again and print (or write) the new file when it differs.
//!
//! 62 code points in 29 ranges: Separator 9, Dots 8, Spaces 16, Semicolon 5, DotInText 24.

use super::Class::{self, *};

/// Sorted, disjoint, inclusive ranges of code points and their class, each with its NFKC
/// form (that of the first and the last code point of a range).
pub(super) const TABLE: &[(char, char, Class)] = &[
    ('\u{0020}', '\u{0020}', Spaces),      // " "
    ('\u{002E}', '\u{002E}', Dots),        // "."
    ('\u{002F}', '\u{002F}', Separator),   // "/"
    ('\u{003B}', '\u{003B}', Semicolon),   // ";"
    ('\u{005C}', '\u{005C}', Separator),   // "\\"
    ('\u{00A0}', '\u{00A0}', Spaces),      // " "
    ('\u{037E}', '\u{037E}', Semicolon),   // ";"
    ('\u{2000}', '\u{200A}', Spaces),      // " " (11 code points)
    ('\u{2024}', '\u{2026}', Dots),        // "." to "..." (3 code points)
    ('\u{202F}', '\u{202F}', Spaces),      // " "
    ('\u{205F}', '\u{205F}', Spaces),      // " "
    ('\u{2100}', '\u{2101}', Separator),   // "a/c" to "a/s" (2 code points)
    ('\u{2105}', '\u{2106}', Separator),   // "c/o" to "c/u" (2 code points)
    ('\u{2488}', '\u{249B}', DotInText),   // "1." to "20." (20 code points)
    ('\u{3000}', '\u{3000}', Spaces),      // " "
    ('\u{33C2}', '\u{33C2}', DotInText),   // "a.m."
    ('\u{33C7}', '\u{33C7}', DotInText),   // "Co."
    ('\u{33D8}', '\u{33D8}', DotInText),   // "p.m."
    ('\u{FE14}', '\u{FE14}', Semicolon),   // ";"
    ('\u{FE19}', '\u{FE19}', Dots),        // "..."
    ('\u{FE30}', '\u{FE30}', Dots),        // ".."
    ('\u{FE52}', '\u{FE52}', Dots),        // "."
    ('\u{FE54}', '\u{FE54}', Semicolon),   // ";"
    ('\u{FE68}', '\u{FE68}', Separator),   // "\\"
    ('\u{FF0E}', '\u{FF0E}', Dots),        // "."
    ('\u{FF0F}', '\u{FF0F}', Separator),   // "/"
    ('\u{FF1B}', '\u{FF1B}', Semicolon),   // ";"
    ('\u{FF3C}', '\u{FF3C}', Separator),   // "\\"
    ('\u{1F100}', '\u{1F100}', DotInText), // "0."
];
