//! Fuzz target `proxy_path`: where a proxied request may go.
//!
//! Feeds `tokengate::proxy::upstream_url` a fixed `api_base` (one of a few, as
//! `ProviderConfig::parse` leaves them: path ending in `/`, no query) and arbitrary `rest` and
//! `query` strings. Input layout: the first byte picks the base; the remaining bytes (lossy
//! UTF-8) are `rest`, up to the first `\n` if there is one, and after it the query (`None`
//! without a `\n`).
//!
//! Invariants asserted, independently of the checks `upstream_url` makes itself (a panic is a
//! finding):
//! - nothing panics, whatever the strings;
//! - an `Ok` URL has the base's scheme, host and port (origin) and its path starts with the
//!   base's path;
//! - no path segment of an `Ok` URL below the base's path decodes — once, twice or three times,
//!   path parameters (`;…`) cut off — to `.` or `..`, holds an encoded `/` or `\`, or decodes to
//!   a control character: an upstream server that decodes the path cannot climb out of the base;
//! - an `Ok` URL is stable: parsing its serialisation gives the same URL (what `fetch` sends is
//!   what was checked);
//! - a `rest` with a literal `..` segment (ignoring an empty query) is never `Ok`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::proxy::upstream_url;
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
    let base = Url::parse(BASES[pick as usize % BASES.len()]).expect("base");
    let text = String::from_utf8_lossy(rest);
    let (rest, query) = match text.split_once('\n') {
        Some((r, q)) => (r, Some(q)),
        None => (text.as_ref(), None),
    };

    let Ok(url) = upstream_url(&base, rest, query) else {
        return;
    };
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
    assert!(
        !rest.split('/').any(|s| s == ".."),
        "a `..` segment was accepted: {rest:?} -> {url}"
    );
});

fn check_segment(seg: &str, url: &Url, rest: &str) {
    let lower = seg.to_ascii_lowercase();
    assert!(
        !lower.contains("%2f") && !lower.contains("%5c") && !seg.contains('\\'),
        "encoded separator in {url} (rest {rest:?})"
    );
    let mut cur = seg.to_string();
    for _ in 0..3 {
        cur = percent_encoding::percent_decode_str(&cur)
            .decode_utf8_lossy()
            .into_owned();
        let bare = cur.split(';').next().unwrap_or("");
        assert!(
            bare != "." && bare != "..",
            "segment {seg:?} of {url} decodes to a dot segment (rest {rest:?})"
        );
        assert!(
            !cur.chars().any(char::is_control),
            "segment {seg:?} of {url} decodes to a control character (rest {rest:?})"
        );
        assert!(
            !cur.contains('/') && !cur.contains('\\'),
            "segment {seg:?} of {url} decodes to a separator (rest {rest:?})"
        );
    }
}
