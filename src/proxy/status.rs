//! What the proxy does with the API's status: which statuses are passed on, and which of those
//! carry no body.

/// Whether the API's `status` can be passed on to the caller: a final status a response can
/// carry (RFC 9110 §15: three digits, 1xx informational and not final; the Fetch standard's
/// `Response` takes 200–599). Any other becomes a 502 `invalid_response`, the body cancelled.
pub fn passes_on(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// Whether a response with `status` has no body to pass on: 204 No Content and 205 Reset
/// Content (RFC 9110 §15.3.5, §15.3.6), 304 Not Modified (RFC 9110 §15.4.5) — the Fetch
/// standard's null body statuses, which a `Response` refuses a body for.
pub fn has_null_body(status: u16) -> bool {
    matches!(status, 204 | 205 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        // (status, passed on, with a body)
        for (status, passed, body) in [
            (100, false, true),
            (101, false, true),
            (199, false, true),
            (200, true, true),
            (204, true, false),
            (205, true, false),
            (206, true, true),
            (301, true, true),
            (304, true, false),
            (307, true, true),
            (401, true, true),
            (599, true, true),
            (600, false, true),
            (999, false, true),
            (0, false, true),
        ] {
            assert_eq!(passes_on(status), passed, "{status}");
            assert_eq!(!has_null_body(status), body, "{status}");
        }
    }
}
