//! Per-isolate memory that callers can grow, bounded: [`BoundedMap`], which evicts its oldest
//! entries one at a time (never everything at once), and [`FailureLimiter`], which slows down
//! guessing a caller's secret at `POST /oauth/token`.

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

/// Failed authentications per client id, in fixed windows: after `max_failures` failures
/// within `window_ms` the id is refused until the window ends (HTTP 429 with `Retry-After`),
/// even with the right secret. Per isolate, in bounded memory: an attacker spread over many
/// isolates gets `max_failures` per window per isolate, which still caps guessing far below
/// what an unlimited endpoint allows.
#[derive(Clone, Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window_ms: u64,
    /// Client id → (window start, failures in it).
    failures: BoundedMap<String, (u64, u32)>,
}

impl FailureLimiter {
    /// A limiter of `max_failures` per `window_ms`, remembering at most `capacity` client ids.
    pub fn new(max_failures: u32, window_ms: u64, capacity: usize) -> Self {
        FailureLimiter {
            max_failures: max_failures.max(1),
            window_ms,
            failures: BoundedMap::new(capacity),
        }
    }

    /// `Err(ms)`: `client_id` is refused for `ms` more milliseconds.
    pub fn check(&self, client_id: &str, now_ms: u64) -> Result<(), u64> {
        match self.failures.get(&client_id.to_string()) {
            Some(&(start, n)) if n >= self.max_failures && now_ms < start + self.window_ms => {
                Err(start + self.window_ms - now_ms)
            }
            _ => Ok(()),
        }
    }

    /// Records a failed authentication of `client_id` at `now_ms`.
    pub fn failed(&mut self, client_id: &str, now_ms: u64) {
        let key = client_id.to_string();
        match self.failures.get_mut(&key) {
            Some((start, n)) if now_ms < *start + self.window_ms => *n += 1,
            Some(slot) => *slot = (now_ms, 1),
            None => self.failures.insert(key, (now_ms, 1)),
        }
    }

    /// Forgets `client_id`'s failures (after it authenticated).
    pub fn succeeded(&mut self, client_id: &str) {
        self.failures.remove(&client_id.to_string());
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
    fn failures_lock_a_client_id_for_the_rest_of_the_window() {
        let mut l = FailureLimiter::new(3, 60_000, 100);
        let t = 1_000_000;
        for i in 0..3 {
            assert_eq!(l.check("svc", t + i), Ok(()));
            l.failed("svc", t + i);
        }
        assert_eq!(l.check("svc", t + 10), Err(59_990));
        assert_eq!(l.check("other", t + 10), Ok(()), "per client id");
        assert_eq!(l.check("svc", t + 60_000), Ok(()), "the window ended");
        // A new window starts with the next failure.
        l.failed("svc", t + 60_000);
        assert_eq!(l.check("svc", t + 60_001), Ok(()));
        // Success forgets the failures.
        l.failed("svc", t + 60_002);
        l.succeeded("svc");
        l.failed("svc", t + 60_003);
        l.failed("svc", t + 60_004);
        assert_eq!(l.check("svc", t + 60_005), Ok(()));
        // Bounded: ids beyond capacity evict the oldest.
        let mut l = FailureLimiter::new(1, 60_000, 2);
        for id in ["a", "b", "c"] {
            l.failed(id, t);
        }
        assert_eq!((l.check("a", t), l.check("c", t)), (Ok(()), Err(60_000)));
    }
}
