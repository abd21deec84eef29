//! Limits with time passed in: a token bucket, token buckets shared by key (an identity, a
//! source address) that outlive the connections using them, and caps on how many connections a
//! key and everyone together hold.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// Full at `now` (time since any fixed origin).
    pub fn new(rate: u32, burst: u32, now: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Self { rate: f64::from(rate), burst, tokens: burst, last: now }
    }

    /// Takes one token at `now`; false when empty.
    pub fn take(&mut self, now: Duration) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (then it is the same as a new one).
    pub fn is_full(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section below is a few map operations that leave the map whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Token buckets by key, shared by all connections of a key and kept after they close until
/// they are full again: closing and opening connections does not reset a budget. At most
/// `max_keys` partly used buckets are kept; a new key past that is refused (its take fails).
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: u32,
    burst: u32,
    max_keys: usize,
    inner: Mutex<(HashMap<K, TokenBucket>, Duration)>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// `rate` tokens per second up to `burst`, for each of at most `max_keys` keys.
    pub fn new(rate: u32, burst: u32, max_keys: usize) -> Self {
        Self { rate, burst, max_keys, inner: Mutex::new((HashMap::new(), Duration::ZERO)) }
    }

    /// Takes a token of `key` at `now`; false when its bucket is empty.
    pub fn take(&self, key: &K, now: Duration) -> bool {
        let mut guard = lock(&self.inner);
        let (map, pruned) = &mut *guard;
        // Once a second, buckets full again go: they hold nothing a new one would not.
        if now.saturating_sub(*pruned) >= Duration::from_secs(1) {
            map.retain(|_, b| !b.is_full(now));
            *pruned = now;
        }
        if let Some(b) = map.get_mut(key) {
            return b.take(now);
        }
        if map.len() >= self.max_keys {
            return false;
        }
        let mut b = TokenBucket::new(self.rate, self.burst, now);
        let ok = b.take(now);
        map.insert(key.clone(), b);
        ok
    }

    /// Keys with a partly used bucket.
    pub fn len(&self) -> usize {
        lock(&self.inner).0.len()
    }

    /// Whether no bucket is partly used.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Caps on places held: at most `total` in all and `per_key` by one key.
#[derive(Debug)]
pub struct Caps<K: Hash + Eq> {
    total: usize,
    per_key: usize,
    inner: Mutex<(usize, HashMap<K, usize>)>,
}

/// A place under [`Caps`], given back when dropped.
#[derive(Debug)]
pub struct CapSlot<K: Hash + Eq + Clone> {
    caps: Arc<Caps<K>>,
    key: K,
}

/// Why [`Caps::take`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// Every place is held.
    #[error("the server holds as many as it takes")]
    Total,
    /// The key holds as many as one key may.
    #[error("this source holds as many as one may")]
    PerKey,
}

impl<K: Hash + Eq + Clone> Caps<K> {
    /// Caps of `total` places, `per_key` of them for one key.
    pub fn new(total: usize, per_key: usize) -> Arc<Self> {
        Arc::new(Self { total, per_key, inner: Mutex::new((0, HashMap::new())) })
    }

    /// A place for `key`, if the caps allow it.
    pub fn take(self: &Arc<Self>, key: K) -> Result<CapSlot<K>, CapError> {
        self.take_within(key, self.per_key)
    }

    /// A place for `key` under the total cap only (a trusted proxy, which carries many clients).
    pub fn take_under_total(self: &Arc<Self>, key: K) -> Result<CapSlot<K>, CapError> {
        self.take_within(key, usize::MAX)
    }

    fn take_within(self: &Arc<Self>, key: K, per_key: usize) -> Result<CapSlot<K>, CapError> {
        let mut guard = lock(&self.inner);
        let (held, by_key) = &mut *guard;
        if *held >= self.total {
            return Err(CapError::Total);
        }
        let n = by_key.entry(key.clone()).or_insert(0);
        if *n >= per_key {
            return Err(CapError::PerKey);
        }
        *n = n.saturating_add(1);
        *held = held.saturating_add(1);
        Ok(CapSlot { caps: self.clone(), key })
    }

    /// Places held in all.
    pub fn held(&self) -> usize {
        lock(&self.inner).0
    }
}

impl<K: Hash + Eq + Clone> Drop for CapSlot<K> {
    fn drop(&mut self) {
        let mut guard = lock(&self.caps.inner);
        let (held, by_key) = &mut *guard;
        *held = held.saturating_sub(1);
        if let Some(n) = by_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_key.remove(&self.key);
            }
        }
    }
}

/// The source a per-address limit counts: an IPv4 address (IPv4-mapped IPv6 too) or an IPv6
/// /64 (one subscriber's network: a host picks any address in it at will).
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut b = TokenBucket::new(10, 5, Duration::ZERO);
        let t = Duration::from_secs(100);
        let mut b2 = TokenBucket::new(10, 5, t);
        assert_eq!((0..10).filter(|_| b2.take(t)).count(), 5);
        // 0.5 s later: 5 more tokens.
        let later = t + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| b2.take(later)).count(), 5);
        // Time going backwards gives nothing.
        assert!(!b2.take(t));
        assert!(b.take(Duration::ZERO));
    }

    #[test]
    fn a_keyed_budget_outlives_its_users_until_it_refills() {
        let k = KeyedBuckets::new(10, 5, 2);
        let t = Duration::from_secs(10);
        assert_eq!((0..10).filter(|_| k.take(&"alice", t)).count(), 5);
        // The same key later in the same instant: still empty (no reset).
        assert!(!k.take(&"alice", t));
        assert!(k.take(&"bob", t));
        // A third key while two buckets are partly used: refused (memory bound).
        assert!(!k.take(&"carol", t));
        // Refilled buckets go; then new keys fit again.
        let later = t + Duration::from_secs(2);
        assert!(k.take(&"carol", later));
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn caps_hold_in_total_and_per_key_and_give_places_back() {
        let caps = Caps::new(3, 2);
        let a1 = caps.take("a").unwrap();
        let _a2 = caps.take("a").unwrap();
        assert_eq!(caps.take("a").unwrap_err(), CapError::PerKey);
        let _b1 = caps.take("b").unwrap();
        assert_eq!(caps.take("c").unwrap_err(), CapError::Total);
        drop(a1);
        assert_eq!(caps.held(), 2);
        assert!(caps.take("c").is_ok());
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_networks() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(source_of(v6("2001:db8:1:2:aaaa::1")), source_of(v6("2001:db8:1:2:bbbb::9")));
        assert_ne!(source_of(v6("2001:db8:1:2::1")), source_of(v6("2001:db8:1:3::1")));
        assert_eq!(source_of(v6("::ffff:192.0.2.7")), v6("192.0.2.7"));
    }
}
