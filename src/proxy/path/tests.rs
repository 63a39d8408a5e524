//! The path rules: joining under `api_base`, splitting request URLs, refused segments, and the
//! table-based segment check against the rule on the NFKC form (UAX #15) it stands for.

use super::*;
use unicode_normalization::UnicodeNormalization;

fn base() -> Url {
    Url::parse("https://api.example.com/v1/").unwrap()
}

/// [`upstream_url`] under [`base`], parsed as the platform parses it (WHATWG URL), with what
/// its construction promises checked on the parsed URL: the base's origin, under its path.
fn joined(rest: &str, query: Option<&str>) -> Result<Url, PathError> {
    upstream_url(&base(), rest, query).map(|s| {
        let u = Url::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(u.origin(), base().origin(), "{s}");
        assert!(u.path().starts_with(base().path()), "{s}");
        u
    })
}

#[test]
fn joins_under_base() {
    let u = upstream_url(&base(), "rmas/42", Some("a=1&b=%20")).unwrap();
    assert_eq!(u, "https://api.example.com/v1/rmas/42?a=1&b=%20");
    assert_eq!(joined("rmas/42", Some("a=1&b=%20")).unwrap().as_str(), u);
    assert_eq!(
        upstream_url(&base(), "", None).unwrap(),
        "https://api.example.com/v1/"
    );
    // An absolute URL in the path stays a path under the base.
    let u = joined("https://evil.example/x", None).unwrap();
    assert_eq!(u.host_str(), Some("api.example.com"));
    assert!(u.path().starts_with("/v1/"));
    let u = joined("//evil.example/x", None).unwrap();
    assert_eq!(u.host_str(), Some("api.example.com"));
    // Whatever the query holds, it is the query.
    let u = joined("x", Some("/../../y#z?w")).unwrap();
    assert_eq!(u.path(), "/v1/x");
}

#[test]
fn request_urls_split_like_the_url_parser() {
    for url in [
        "https://gateway.test/optoro/v1/items?page=2&x=%20",
        "https://gateway.test/optoro/v1/items",
        "https://gateway.test/",
        "https://gateway.test",
        "https://gateway.test?q=1",
        "http://127.0.0.1:8787/optoro/a%2Fb/c?",
        "https://gateway.test/optoro/x?a=1#frag",
        "https://gateway.test/optoro/%3F/x?q=%23",
        "https://user:pw@gateway.test:8443/p/q;r?s=t",
    ] {
        let parsed = Url::parse(url).unwrap();
        let (path, query) = split_request_url(parsed.as_str());
        assert_eq!(path, parsed.path(), "{url}");
        assert_eq!(query, parsed.query(), "{url}");
    }
}

#[test]
fn refuses_escapes() {
    for p in [
        "..",
        "../admin",
        "a/../../x",
        "./x",
        "%2e%2e/x",
        "%2E%2e/x",
        ".%2e/x",
        "%2e",
        "...",
        ".. ",
        "%2e%2e%20/x",
        // Encoded more than once, however it is spelled.
        "%252e%252e/x",
        "%25",
        "a%25b",
        "%%32e%%32e/x",
        "%%32%65/x",
        // Separators, encoded or look-alike.
        "a%2f..%2fb",
        "a%2Fb",
        "a%5cb",
        "a\\..\\b",
        "a\u{FF0F}b",
        "%EF%BC%8F",
        "a%E2%88%95b",
        "a\u{29F8}b",
        "a\u{FE68}b",
        "a%EF%B9%A8b",
        "\u{2100}",
        // Dot look-alikes (NFKC `.`, `..`, `...`) and overlong UTF-8.
        "\u{FF0E}\u{FF0E}/x",
        "%EF%BC%8E%EF%BC%8E/x",
        "%E2%80%A4%E2%80%A4",
        "\u{2025}/x",
        "%E2%80%A5/x",
        "\u{FE30}",
        "%EF%B8%B0/x",
        "\u{2026}",
        "\u{FE19}",
        ".\u{FE52}",
        "%C0%AE%C0%AE/x",
        "%C0%AE",
        "%E0%80%AE",
        "a%FFb",
        // Path parameters and control characters.
        "..;/admin",
        "%2e%2e;x/y",
        ".;/x",
        "..%00/x",
        "a%0a/b",
        "a%7fb",
        "a%c2%85b",
        // Dots before look-alike spaces (NFKC ` `) and semicolons (NFKC `;`).
        "..\u{00A0}",
        "..%C2%A0/x",
        "..\u{3000}",
        "..%E3%80%80/x",
        "\u{2025}\u{2002} /x",
        "..\u{FF1B}x",
        "..%EF%BC%9Bx/y",
        "..\u{037E}x",
        ".%CD%BE",
        "\u{2025}\u{FE54}",
        // A raw `?` or `#` would end the path early when the URL is parsed (the query
        // has its own argument), leaving what is before it unchecked as a segment.
        "%EF%BC%8E%EF%BC%8E?x",
        "\0%EF%BC%8E%EF%BC%8E?x",
        "a?b",
        "a#b",
        "..#",
    ] {
        assert_eq!(
            upstream_url(&base(), p, None),
            Err(PathError::Unsafe),
            "{p}"
        );
    }
}

#[test]
fn lets_ordinary_segments_through() {
    for (p, path) in [
        ("rmas/42", "/v1/rmas/42"),
        ("a.b/c..d/.e/f.", "/v1/a.b/c..d/.e/f."),
        ("100%", "/v1/100%"),
        ("a%20b", "/v1/a%20b"),
        ("caf%C3%A9", "/v1/caf%C3%A9"),
        ("x;y=1", "/v1/x;y=1"),
        ("%41%42", "/v1/%41%42"),
        ("1.5", "/v1/1.5"),
        // NFKC `1.`, `a.m.`, `...x`, `v.2`: text, not dot segments.
        ("\u{2488}", "/v1/%E2%92%88"),
        ("%E2%92%88", "/v1/%E2%92%88"),
        ("\u{33C2}", "/v1/%E3%8F%82"),
        ("\u{2026}x", "/v1/%E2%80%A6x"),
        ("v%EF%BC%8E2", "/v1/v%EF%BC%8E2"),
        // A look-alike semicolon or space where no dot segment is made.
        ("%EF%BC%9Bx", "/v1/%EF%BC%9Bx"),
        ("a%C2%A0b", "/v1/a%C2%A0b"),
    ] {
        let u = joined(p, None).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(u.path(), path, "{p}");
    }
}

/// The segment rule of [`upstream_url`] stated on the NFKC form (UAX #15) of the decoded
/// segment, NFKC computed by `unicode-normalization` rather than read from the look-alike table,
/// plus the two separators NFKC leaves alone: the oracle of the table-based check.
fn nfkc_rule_refuses(decoded: &str) -> bool {
    let n: String = decoded.nfkc().collect();
    let bare = n.split(';').next().unwrap_or("").trim_end_matches(' ');
    decoded.chars().any(char::is_control)
        || decoded.contains(['\u{2215}', '\u{29F8}'])
        || n.contains(['/', '\\'])
        || n.chars().any(char::is_control)
        || (!bare.is_empty() && bare.chars().all(|c| c == '.'))
}

fn assert_agrees(decoded: &str) {
    assert_eq!(
        check_decoded(decoded).is_err(),
        nfkc_rule_refuses(decoded),
        "{decoded:?} = {:X?}",
        decoded.chars().map(u32::from).collect::<Vec<_>>()
    );
}

/// Where each scalar value is put (before it, after it): alone, before path parameters, before
/// a space and an ideographic space (trailing spaces), after and before dots, between dots,
/// doubled, and before a combining mark (which could compose with it).
const AROUND: &[(&str, &str)] = &[
    ("", ""),
    ("", ";x"),
    ("", " "),
    ("", "\u{3000}"),
    ("..", ""),
    ("", ".."),
    (".", "."),
    ("", "\u{0338}"),
];

/// [`assert_agrees`] for each scalar value of `range` in each place of [`AROUND`], doubled,
/// and, percent-encoded, through the whole segment check.
fn agrees_for_every_scalar_value_in(range: std::ops::Range<u32>) {
    let mut s = String::new();
    for c in range.filter_map(char::from_u32) {
        for (before, after) in AROUND {
            s.clear();
            s.push_str(before);
            s.push(c);
            s.push_str(after);
            assert_agrees(&s);
        }
        s.clear();
        s.extend([c, c]);
        assert_agrees(&s);
        let alone = c.to_string();
        let encoded =
            percent_encoding::utf8_percent_encode(&alone, percent_encoding::NON_ALPHANUMERIC);
        assert_eq!(
            check_segment(&encoded.to_string()).is_err(),
            c == '%' || nfkc_rule_refuses(&alone),
            "U+{:04X} percent-encoded",
            u32::from(c)
        );
    }
}

#[test]
fn the_table_based_check_is_the_nfkc_rule_for_every_scalar_value() {
    // About ten million strings: on as many threads as there are cores.
    let end = char::MAX as u32 + 1;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let chunk = end.div_ceil(threads);
    std::thread::scope(|scope| {
        for i in 0..threads {
            let range = i * chunk..((i + 1) * chunk).min(end);
            scope.spawn(move || agrees_for_every_scalar_value_in(range));
        }
    });
}

/// Every pair and triple of the characters that matter — each one the table lists, the
/// addendum, and a few that combine or look like spaces or dots without being one in NFKC.
#[test]
fn the_table_based_check_is_the_nfkc_rule_for_pairs_and_triples() {
    let mut chars: Vec<char> = (0..=char::MAX as u32)
        .filter_map(char::from_u32)
        .filter(|&c| super::lookalikes::class(c).is_some())
        .collect();
    chars.extend([
        'a', '1', 'e', '\u{00E9}', '\u{0301}', '\u{0338}', '\u{00A8}', '\u{1680}', '\u{2028}',
        '\u{2044}', '\u{3002}', '\u{FF61}', '\u{1100}', '\u{1161}', '\u{11A8}', '\u{0009}',
    ]);
    let mut s = String::new();
    for &a in &chars {
        for &b in &chars {
            for suffix in ["", ";x", " "] {
                s.clear();
                s.extend([a, b]);
                s.push_str(suffix);
                assert_agrees(&s);
            }
            for &c in &chars {
                s.clear();
                s.extend([a, b, c]);
                assert_agrees(&s);
            }
        }
    }
}
