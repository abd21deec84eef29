//! Per-connection rate limiting: a token bucket with time passed in.

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
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
}
