//! Fuzz target `proxy_path`: where a proxied request may go.
//!
//! Feeds `tokengate::proxy::upstream_url` a fixed `api_base` (one of a few, as
//! `ProviderConfig::parse` leaves them: path ending in `/`, no query) and arbitrary `rest` and
//! `query` strings. Input layout: the first byte picks the base; the remaining bytes (lossy
//! UTF-8) are `rest`, up to the first `\n` if there is one, and after it the query (`None`
//! without a `\n`). Each input is tried twice: with these strings as they are, and with the
//! `rest` and query the Worker would pass for a request to
//! `https://gateway.example/p/<rest>?<query>` (what the URL parser leaves of them).
//!
//! Invariants asserted, independently of the checks `upstream_url` makes itself (a panic is a
//! finding), on its result as the platform's URL parser reads it (WHATWG URL, the `url` crate
//! here; `upstream_url` itself does not parse what it joins):
//! - nothing panics, whatever the strings;
//! - an `Ok` URL parses, and has the base's scheme, host and port (origin) and its path starts with the
//!   base's path;
//! - every path segment of an `Ok` URL below the base's path — what the upstream server gets,
//!   after the URL parser's own normalisation — is safe for a server that decodes it and
//!   normalises it to NFKC (the rules `upstream_url` documents, checked on its output rather
//!   than its input): one percent-decoding is a fixpoint (no `%25`, nothing a second decoding
//!   would change), the result is UTF-8 and holds no control character, and its NFKC form N
//!   (Unicode Standard Annex #15, computed here by the `unicode-normalization` crate, not read
//!   from the core's look-alike table) holds no `/`, `\` or control character, nor does the
//!   decoded text hold U+2215 or U+29F8 (the two separators NFKC leaves alone that the core
//!   refuses all the same), and the part of N before its first `;`, with trailing spaces
//!   removed, is empty or not only dots (not a dot segment, RFC 3986 §5.2.4);
//! - an `Ok` URL is stable: parsing its serialisation gives the same URL (what `fetch` sends is
//!   what was checked);
//! - a `rest` with a literal `..` segment is never `Ok`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tokengate::proxy::upstream_url;
use unicode_normalization::UnicodeNormalization;
use url::Url;

const BASES: &[&str] = &[
    "https://api.example.com/v1/",
    "https://api.example.com/",
    "http://127.0.0.1:8788/optoro/api/",
    "https://public-api.optimum-automotive.com/",
    "https://api.example.com:8443/a/b%20c/",
    "http://[::1]/x/",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    static PARSED: OnceLock<Vec<Url>> = OnceLock::new();
    let bases = PARSED.get_or_init(|| BASES.iter().map(|b| Url::parse(b).expect("base")).collect());
    let base = &bases[pick as usize % bases.len()];
    let text = String::from_utf8_lossy(rest);
    let (rest, query) = match text.split_once('\n') {
        Some((r, q)) => (r, Some(q)),
        None => (text.as_ref(), None),
    };

    // The strings as given.
    if check(base, rest, query) {
        assert!(
            !rest.split('/').any(|s| s == ".."),
            "a `..` segment was accepted: {rest:?}"
        );
    }

    // The strings as the Worker gets them: the path after `/{provider}/` and the query of the
    // parsed request URL.
    let mut gateway = format!("https://gateway.example/p/{rest}");
    if let Some(q) = query {
        gateway.push('?');
        gateway.push_str(q);
    }
    if let Ok(request) = Url::parse(&gateway) {
        let path = request.path().trim_start_matches('/');
        if let Some(("p", rest)) = path.split_once('/') {
            check(base, rest, request.query());
        }
    }
});

/// The invariants of one `upstream_url` call. Whether it was `Ok`.
fn check(base: &Url, rest: &str, query: Option<&str>) -> bool {
    let Ok(joined) = upstream_url(base, rest, query) else {
        return false;
    };
    let url = Url::parse(&joined).unwrap_or_else(|e| panic!("{joined:?} does not parse: {e}"));
    assert_eq!(url.origin(), base.origin(), "{url} from {rest:?} {query:?}");
    assert_eq!(url.scheme(), base.scheme());
    assert_eq!(url.host_str(), base.host_str());
    assert_eq!(url.port_or_known_default(), base.port_or_known_default());
    let path = url.path();
    assert!(
        path.starts_with(base.path()),
        "{url} leaves {base} (rest {rest:?})"
    );
    for seg in path[base.path().len()..].split('/') {
        check_segment(seg, &url, rest);
    }
    let reparsed = Url::parse(url.as_str()).expect("an Ok URL re-parses");
    assert_eq!(reparsed, url, "unstable serialisation");
    true
}

/// Look-alikes of `/` that NFKC leaves alone and `upstream_url` refuses as separators all the
/// same: U+2215 DIVISION SLASH (Windows "best-fit" code pages map it to `/`) and U+29F8 BIG
/// SOLIDUS.
const SEPARATOR_ADDENDUM: [char; 2] = ['\u{2215}', '\u{29F8}'];

fn check_segment(seg: &str, url: &Url, rest: &str) {
    let ctx = || format!("segment {seg:?} of {url} (rest {rest:?})");
    let once: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
    let twice: Vec<u8> = percent_encoding::percent_decode(&once).collect();
    assert!(
        once == twice && !seg.to_ascii_lowercase().contains("%25"),
        "{}: a second decoding changes it",
        ctx()
    );
    let decoded = String::from_utf8(once).unwrap_or_else(|_| panic!("{}: not UTF-8", ctx()));
    let n: String = decoded.nfkc().collect();
    assert!(
        !n.contains(['/', '\\']) && !decoded.contains(SEPARATOR_ADDENDUM),
        "{}: decodes to a separator (NFKC {n:?})",
        ctx()
    );
    assert!(
        !decoded.chars().any(char::is_control) && !n.chars().any(char::is_control),
        "{}: decodes to a control character",
        ctx()
    );
    let bare = n.split(';').next().unwrap_or("").trim_end_matches(' ');
    assert!(
        bare.is_empty() || !bare.chars().all(|c| c == '.'),
        "{}: a dot segment (NFKC {n:?})",
        ctx()
    );
}
