//! Expiry policy: when a cached token stops being served, and how long KV may keep it.
//!
//! The expiry time always travels with the token and is checked on every read; a KV TTL is only
//! housekeeping. Workers KV rejects `expiration_ttl` below 60 seconds, so a token with less life
//! left than that (after the refresh skew) stays in memory only.

/// Smallest `expiration_ttl` Workers KV accepts, seconds.
pub const KV_MIN_TTL_S: u64 = 60;

/// Lifetime rules of one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryPolicy {
    /// Stop serving a token this many seconds before it expires.
    pub refresh_skew_s: u64,
    /// Lifetime when the response says nothing (no `expires_in`, no JWT `exp`).
    pub default_lifetime_s: u64,
    /// Upper bound on any lifetime (Optimum Automotive issues ~355-day tokens:
    /// `docs/providers.md#optimum-token-response`).
    pub max_lifetime_s: u64,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        ExpiryPolicy {
            refresh_skew_s: 60,
            default_lifetime_s: 300,
            max_lifetime_s: 86_400,
        }
    }
}

/// The skew actually applied to a token that lived `lifetime_ms`: never more than half its
/// life, so a token shorter than the configured skew is still used for a while instead of
/// forcing an exchange on every request.
pub fn effective_skew_ms(policy: &ExpiryPolicy, issued_at_ms: u64, expires_at_ms: u64) -> u64 {
    let lifetime = expires_at_ms.saturating_sub(issued_at_ms);
    (policy.refresh_skew_s * 1000).min(lifetime / 2)
}

/// Time from which the token must no longer be served (refreshed instead).
pub fn refresh_at_ms(policy: &ExpiryPolicy, issued_at_ms: u64, expires_at_ms: u64) -> u64 {
    expires_at_ms - effective_skew_ms(policy, issued_at_ms, expires_at_ms)
}

/// The moment a token has lived `percent` % of its lifetime: from then on a coordinator may
/// replace it ahead of its refresh point (refresh-ahead), so that no caller waits for the
/// exchange.
pub fn ahead_at_ms(issued_at_ms: u64, expires_at_ms: u64, percent: u64) -> u64 {
    let lifetime = expires_at_ms.saturating_sub(issued_at_ms);
    issued_at_ms
        .saturating_add(lifetime / 100 * percent.min(100) + lifetime % 100 * percent.min(100) / 100)
}

/// Whether a token may be served at `now_ms`.
pub fn is_fresh(policy: &ExpiryPolicy, issued_at_ms: u64, expires_at_ms: u64, now_ms: u64) -> bool {
    now_ms < refresh_at_ms(policy, issued_at_ms, expires_at_ms)
}

/// The KV `expiration_ttl` for a token at `now_ms` that must stay readable until it expires,
/// past its refresh point: a token API's token, which the next reader rotates with its refresh
/// token rather than replacing it with a new one. `None` under [`KV_MIN_TTL_S`].
pub fn kv_ttl_until_expiry_s(expires_at_ms: u64, now_ms: u64) -> Option<u64> {
    let left = expires_at_ms.saturating_sub(now_ms) / 1000;
    (left >= KV_MIN_TTL_S).then_some(left)
}

/// The KV `expiration_ttl` for a token at `now_ms`: its life left before the refresh point,
/// in whole seconds, or `None` when that is under [`KV_MIN_TTL_S`] (memory only).
pub fn kv_ttl_s(
    policy: &ExpiryPolicy,
    issued_at_ms: u64,
    expires_at_ms: u64,
    now_ms: u64,
) -> Option<u64> {
    let left = refresh_at_ms(policy, issued_at_ms, expires_at_ms).saturating_sub(now_ms) / 1000;
    (left >= KV_MIN_TTL_S).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn ttl_table() {
        let p = ExpiryPolicy::default();
        // (lifetime s, expected KV TTL, fresh at issue time)
        let table: &[(u64, Option<u64>, bool)] = &[
            (90_000, Some(89_940), true), // Optoro: 25 h
            (3_600, Some(3_540), true),   // partner API: 1 h
            (121, Some(61), true),        // 121 - 60 = 61 s left: kept
            (120, Some(60), true),        // exactly KV's minimum
            (119, None, true),            // 59 s after skew: memory only
            (90, None, true),
            (30, None, true), // shorter than the skew: half its life is used
            (0, None, false),
        ];
        for &(life, ttl, fresh) in table {
            let exp = NOW + life * 1000;
            assert_eq!(kv_ttl_s(&p, NOW, exp, NOW), ttl, "lifetime {life}");
            assert_eq!(is_fresh(&p, NOW, exp, NOW), fresh, "lifetime {life}");
        }
    }

    #[test]
    fn refresh_point() {
        let p = ExpiryPolicy::default();
        let exp = NOW + 3_600_000;
        assert!(is_fresh(&p, NOW, exp, exp - 60_001));
        assert!(!is_fresh(&p, NOW, exp, exp - 60_000));
        assert!(!is_fresh(&p, NOW, exp, exp + 1));
        // 30 s token: skew is 15 s.
        assert!(is_fresh(&p, NOW, NOW + 30_000, NOW + 14_999));
        assert!(!is_fresh(&p, NOW, NOW + 30_000, NOW + 15_000));
        // Later reads shorten the KV TTL.
        assert_eq!(kv_ttl_s(&p, NOW, exp, NOW + 1_000_000), Some(2_540));
        assert_eq!(kv_ttl_s(&p, NOW, exp, exp - 100_000), None);
    }
}
