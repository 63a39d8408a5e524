//! Where a proxied request may go: the upstream URL under `api_base`, the segment rules that
//! keep it there (RFC 3986 §5.2.4), and the path and query of a request URL.

use super::lookalikes;
use url::Url;

/// Why a proxied path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A segment that some server could read as a step up or a separator: see
    /// [`upstream_url`].
    #[error(
        "path has a segment that decodes to a dot segment, a separator or a control character, \
         or is encoded more than once"
    )]
    Unsafe,
}

/// The upstream URL for `rest` (the raw, still percent-encoded path after `/{provider}/`) and
/// the raw `query`, under `api_base` (whose path ends with `/`).
///
/// Each segment is percent-decoded and refused if it was encoded more than once (an encoded
/// `%`, or an escape a second decoding reveals: a server that decodes twice would see what
/// this check did not; so one decoding is the fixpoint of every segment let through),
/// if it is not UTF-8 (overlong forms such as `%C0%AE` are how some servers are tricked into
/// a `.`), if it holds a NUL or other control character, or if a server that normalises it to
/// NFKC (Unicode compatibility composition, UAX #15) would read it as a separator or a dot
/// segment. Stated on the NFKC form N of the decoded segment, the segment is refused when
/// - N holds a `/` or `\` (U+FF0F `／`, U+FF3C `＼`, U+FE68 `﹨`, U+2100 `℀` → `a/c`), or a
///   control character;
/// - the part of N before its first `;` — path parameters: `..;x` is `..` to Tomcat, Jetty and
///   Spring, and U+FF1B `；` or U+037E is a `;` too — with trailing spaces removed (U+00A0 and
///   U+3000 are spaces), is not empty and only dots (U+FF0E `．` → `.`, U+2025 `‥` and U+FE30
///   `︰` → `..`): a dot segment, which RFC 3986 §5.2.4 removes with the segment before it,
///   climbing out of the base.
///
/// U+2215 DIVISION SLASH and U+29F8 BIG SOLIDUS, which NFKC leaves alone, are refused as
/// separators too (Windows "best-fit" code-page mappings turn U+2215 into `/`). Text such as
/// U+2488 `⒈` (NFKC `1.`) or `1.5` is no dot segment and passes.
///
/// The result is `api_base`'s own serialisation followed by the checked segments and the
/// query, so it keeps the base's origin and path prefix by construction: no segment holds a
/// raw `?` or `#` (which the URL parser would read as the end of the path), a `/` or `\` raw or
/// decoded (a separator), a control character (which it would strip) or a dot segment (which it
/// would remove, climbing up). It is not parsed again here: the platform parses it once,
/// when the upstream request is made. The tests and the fuzz target `proxy_path` parse every
/// URL this returns the way the platform does (WHATWG URL) and check the origin, the path
/// prefix and each segment of the result.
pub fn upstream_url(api_base: &Url, rest: &str, query: Option<&str>) -> Result<String, PathError> {
    // `rest` is a path: a raw `?` or `#` would move what follows out of it when the joined URL
    // is parsed, past the segment checks below.
    if rest.contains(['?', '#']) {
        return Err(PathError::Unsafe);
    }
    for seg in rest.split('/') {
        check_segment(seg)?;
    }
    let mut s = format!(
        "{}{}",
        api_base.as_str().split(['?', '#']).next().unwrap_or(""),
        rest.trim_start_matches('/')
    );
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        s.push('?');
        s.push_str(q);
    }
    Ok(s)
}

/// The path (still percent-encoded, from its first `/`) and the query (without `?`) of a
/// request URL as the platform serialises it (WHATWG URL: a special scheme, `//`, the host, a
/// path that is never empty, `?` and `#` encoded everywhere but where they start the query and
/// the fragment) — read off the string, without parsing it again.
pub fn split_request_url(url: &str) -> (&str, Option<&str>) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let rest = rest.split('#').next().unwrap_or("");
    let Some(slash) = rest.find(['/', '?']) else {
        return ("/", None);
    };
    let target = &rest[slash..];
    match target.split_once('?') {
        Some((path, query)) => (if path.is_empty() { "/" } else { path }, Some(query)),
        None => (target, None),
    }
}

/// One raw segment of a proxied path, by the rules of [`upstream_url`].
fn check_segment(seg: &str) -> Result<(), PathError> {
    // An encoded `%` (`%25`), or an escape that only a second decoding reveals (`%%32e` is
    // `%2e` once decoded): a server that decodes twice would see what this check did not.
    // (Without a `%` there is nothing to decode. `%25` has no letter: no case to fold.)
    if !seg.contains('%') {
        return check_decoded(seg);
    }
    let once: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
    let twice: Vec<u8> = percent_encoding::percent_decode(&once).collect();
    if seg.contains("%25") || twice != once {
        return Err(PathError::Unsafe);
    }
    let decoded = std::str::from_utf8(&once).map_err(|_| PathError::Unsafe)?;
    check_decoded(decoded)
}

/// The rule of [`upstream_url`] on a decoded segment: no control character (NFKC turns no other
/// character into one, which the tests of the look-alike table check), and NFKC-safe. Each
/// character is read through its [`lookalikes::skeleton`] (what NFKC makes of it, in ASCII as
/// far as the rule is concerned), and the ASCII rule is applied to the result: no `/` or `\`,
/// and the part before the first `;`, with trailing spaces removed, is empty or not only dots.
fn check_decoded(decoded: &str) -> Result<(), PathError> {
    if decoded.chars().any(char::is_control) {
        return Err(PathError::Unsafe);
    }
    let skeleton: String = decoded.chars().map(lookalikes::skeleton).collect();
    if skeleton.contains(['/', '\\']) {
        return Err(PathError::Unsafe);
    }
    let bare = skeleton
        .split(';')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ');
    if !bare.is_empty() && bare.chars().all(|c| c == '.') {
        return Err(PathError::Unsafe);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
