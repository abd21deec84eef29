//! Log lines about refusals, at a bounded rate: a flood of bad input must not become a flood of
//! log lines (disk, and the time to write them). Each line allowed says how many were held back
//! since the one before it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Allows `per_second` lines a second; counts the rest.
#[derive(Debug)]
pub struct RateLimitedLog {
    per_second: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    window: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    /// At most `per_second` lines in any one-second window.
    pub const fn per_second(per_second: u32) -> Self {
        Self { per_second, state: Mutex::new(State { window: None, in_window: 0, suppressed: 0 }) }
    }

    /// Whether to write a line now: `Some(n)` with the number of lines held back since the last
    /// one written (write it as a field), or `None` (count this one as held back).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`RateLimitedLog::allow`] at `now`.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = s.window.is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1));
        if fresh {
            s.window = Some(now);
            s.in_window = 0;
        }
        if s.in_window < self.per_second {
            s.in_window = s.in_window.saturating_add(1);
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed = s.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_rate_are_counted_and_reported_with_the_next_one() {
        let log = RateLimitedLog::per_second(2);
        let t = Instant::now();
        assert_eq!(log.allow_at(t), Some(0));
        assert_eq!(log.allow_at(t), Some(0));
        assert_eq!((0..5).filter_map(|_| log.allow_at(t)).count(), 0);
        let later = t + Duration::from_millis(1_000);
        assert_eq!(log.allow_at(later), Some(5));
        assert_eq!(log.allow_at(later), Some(0));
        assert_eq!(log.allow_at(later), None);
    }
}
