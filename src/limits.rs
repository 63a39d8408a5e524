//! Per-isolate memory that callers can grow, bounded: [`BoundedMap`], which evicts its oldest
//! entries one at a time (never everything at once), and [`WindowCounter`], events per key in
//! fixed windows; the constants of the limits of `POST /oauth/token` (kept exact across
//! isolates by the caller authority: [`crate::authority::address`], [`crate::authority::client`])
//! and the key a client address is limited under ([`client_address`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `capacity` entries. Inserting a new key into a full map evicts the entry
/// inserted longest ago (first in, first out); replacing a key's value keeps its place.
#[derive(Clone, Debug)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    /// Each key with its value and the sequence number of its insertion.
    map: HashMap<K, (V, u64)>,
    /// Insertions, oldest first; an entry whose sequence number no longer matches the map's was
    /// removed or replaced and is skipped.
    order: VecDeque<(u64, K)>,
    next: u64,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// An empty map that holds at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    /// The value of `key`, to change in place.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    /// Sets `key` to `value`, evicting the oldest entry first if the map is full.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(slot) = self.map.get_mut(&key) {
            slot.0 = value;
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some((seq, old)) => {
                    if self.map.get(&old).is_some_and(|(_, s)| *s == seq) {
                        self.map.remove(&old);
                    }
                }
                None => break,
            }
        }
        let seq = self.next;
        self.next += 1;
        self.order.push_back((seq, key.clone()));
        self.map.insert(key, (value, seq));
        // Removals leave stale entries behind: compact before they outnumber the live ones.
        if self.order.len() > 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(seq, k)| map.get(k).is_some_and(|(_, s)| s == seq));
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(v, _)| v)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many insertions the map remembers the order of (live and stale), for tests of its
    /// bound.
    pub fn order_len(&self) -> usize {
        self.order.len()
    }
}

/// Events per key in fixed windows of `window_ms`, remembering at most `capacity` keys (the
/// oldest forgotten first: memory stays bounded however many keys an attacker invents).
#[derive(Clone, Debug)]
pub struct WindowCounter {
    window_ms: u64,
    /// Key → (window start, events in it).
    counts: BoundedMap<String, (u64, u32)>,
}

impl WindowCounter {
    /// A counter of windows of `window_ms`, remembering at most `capacity` keys.
    pub fn new(window_ms: u64, capacity: usize) -> Self {
        WindowCounter {
            window_ms: window_ms.max(1),
            counts: BoundedMap::new(capacity),
        }
    }

    /// `Err(ms)` when `key` has had `max` events or more in the window under way at `now_ms`:
    /// the window ends in `ms` milliseconds.
    pub fn check(&self, key: &str, max: u32, now_ms: u64) -> Result<(), u64> {
        match self.counts.get(&key.to_string()) {
            // (At most one window, also for a clock that stepped back.)
            Some(&(start, n)) if n >= max && now_ms < start + self.window_ms => {
                Err((start + self.window_ms - now_ms).min(self.window_ms))
            }
            _ => Ok(()),
        }
    }

    /// Records one event of `key` at `now_ms` (starting a new window when the last one ended).
    pub fn record(&mut self, key: &str, now_ms: u64) {
        let key = key.to_string();
        match self.counts.get_mut(&key) {
            Some((start, n)) if now_ms < *start + self.window_ms => *n = n.saturating_add(1),
            Some(slot) => *slot = (now_ms, 1),
            None => self.counts.insert(key, (now_ms, 1)),
        }
    }
}

/// Failed authentications at `POST /oauth/token` allowed per client address and window.
pub const MAX_AUTH_FAILURES: u32 = 10;
/// The window of [`MAX_AUTH_FAILURES`] and of caller token-request limits, milliseconds.
pub const TOKEN_ENDPOINT_WINDOW_MS: u64 = 60_000;
/// Token requests a caller may make per minute unless its registration says otherwise.
pub const DEFAULT_TOKEN_REQUESTS_PER_MINUTE: u32 = 60;

/// Why `POST /oauth/token` refused a request before issuing anything (HTTP 429).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenEndpointRefusal {
    /// The client address failed to authenticate [`MAX_AUTH_FAILURES`] times this window.
    AddressLocked {
        /// Milliseconds until it is accepted again.
        retry_after_ms: u64,
    },
    /// The caller asked for its `token_requests_per_minute` tokens this window already.
    TooManyTokenRequests {
        /// Milliseconds until it may ask again.
        retry_after_ms: u64,
    },
}

/// The key a client address is limited under: an IPv4 address as it is, an IPv6 address as
/// its /64 prefix (RFC 4291 §2.5.4: the interface identifier is the low 64 bits, and a single
/// client is routinely given a whole /64), anything else (no `CF-Connecting-IP`, or text that
/// is not an address) as one shared key.
pub fn client_address(connecting_ip: Option<&str>) -> String {
    match connecting_ip
        .map(str::trim)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
    {
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_one_at_a_time() {
        let mut m = BoundedMap::new(3);
        for k in 0..3 {
            m.insert(k, k * 10);
        }
        m.insert(0, 1); // a replacement keeps 0 the oldest
        m.insert(3, 30);
        assert_eq!((m.len(), m.get(&0), m.get(&1)), (3, None, Some(&10)));
        m.insert(4, 40);
        assert_eq!(
            (m.get(&1), m.get(&2), m.get(&3), m.get(&4)),
            (None, Some(&20), Some(&30), Some(&40))
        );
        // A removed key's old place is skipped: the next eviction takes a live entry.
        m.remove(&2);
        m.insert(5, 50);
        m.insert(6, 60);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m.get(&3), m.get(&4), m.get(&5), m.get(&6)),
            (None, Some(&40), Some(&50), Some(&60))
        );
    }

    #[test]
    fn memory_stays_flat_however_many_keys_go_through() {
        let mut m = BoundedMap::new(100);
        for k in 0..100_000u32 {
            m.insert(k, ());
            if k % 3 == 0 {
                m.remove(&k);
            }
            assert!(m.len() <= 100 && m.order_len() <= 201, "{k}");
        }
        // Full but for the last key, removed right after its insertion (99_999 % 3 == 0).
        assert_eq!(m.len(), 99);
        assert!(m.get(&99_998).is_some() && m.get(&99_800).is_none());
    }

    #[test]
    fn window_counter_counts_per_key_and_window() {
        let mut c = WindowCounter::new(60_000, 100);
        let t = 1_000_000;
        for i in 0..3 {
            assert_eq!(c.check("a", 3, t + i), Ok(()));
            c.record("a", t + i);
        }
        assert_eq!(c.check("a", 3, t + 10), Err(59_990));
        assert_eq!(
            c.check("a", 3, t - 5),
            Err(60_000),
            "never more than a window"
        );
        assert_eq!(c.check("a", 4, t + 10), Ok(()), "under a higher limit");
        assert_eq!(c.check("b", 3, t + 10), Ok(()), "per key");
        assert_eq!(c.check("a", 3, t + 60_000), Ok(()), "the window ended");
        // A new window starts with the next event.
        c.record("a", t + 60_000);
        assert_eq!(c.check("a", 1, t + 60_001), Err(59_999));
        assert_eq!(c.check("a", 2, t + 60_001), Ok(()));
        // Bounded: keys beyond capacity evict the oldest.
        let mut c = WindowCounter::new(60_000, 2);
        for k in ["a", "b", "c"] {
            c.record(k, t);
        }
        assert_eq!(
            (c.check("a", 1, t), c.check("c", 1, t)),
            (Ok(()), Err(60_000))
        );
    }

    /// The sequence of `POST /oauth/token`: (step, address or caller, expected), in order.
    #[test]
    fn client_addresses() {
        for (ip, key) in [
            (Some("203.0.113.9"), "203.0.113.9"),
            (Some(" 203.0.113.9 "), "203.0.113.9"),
            (
                Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
                "2001:db8:1:2::/64",
            ),
            (Some("2001:db8:1:2::1"), "2001:db8:1:2::/64"),
            (Some("::ffff:192.0.2.1"), "192.0.2.1"),
            (Some("not an address"), "unknown"),
            (Some(""), "unknown"),
            (None, "unknown"),
        ] {
            assert_eq!(client_address(ip), key, "{ip:?}");
        }
    }
}
