//! Counters a vault keeps about itself, read by the server's `/metrics`.
//!
//! Plain atomics: a vault never waits on a metrics reader, and a reader sees each counter
//! monotonic (gauges aside).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use callvault_protocol::fields::{CallStatus, Direction};

/// Upper bounds (seconds) of the handler latency histogram's buckets.
pub const LATENCY_BOUNDS: [f64; 12] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/// A latency histogram with fixed buckets ([`LATENCY_BOUNDS`]) and an overflow bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 13],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BOUNDS.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Count per bucket (not cumulative), the last one being `+Inf`.
    pub fn counts(&self) -> [u64; 13] {
        std::array::from_fn(|i| self.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed)))
    }

    /// Sum of observations in seconds.
    pub fn sum_secs(&self) -> f64 {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)).as_secs_f64()
    }
}

/// How a call setup ended, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupOutcome {
    /// Answered.
    Answered,
    /// Declined, busy, or lost a glare.
    Rejected,
    /// Timed out or cancelled while ringing.
    Missed,
}

impl SetupOutcome {
    /// Every outcome, in label order.
    pub const ALL: [Self; 3] = [Self::Answered, Self::Rejected, Self::Missed];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Rejected => "rejected",
            Self::Missed => "missed",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Answered => 0,
            Self::Rejected => 1,
            Self::Missed => 2,
        }
    }
}

/// What the vault dropped or refused, by reason, and how its calls went.
#[derive(Debug, Default)]
pub struct VaultStats {
    /// Gift wraps that did not unwrap (bad signature, not for us, stale, malformed, too large).
    pub bad_wraps: AtomicU64,
    /// Wraps sealed by a vault key that is not an active connection's, or naming another sender.
    pub unknown_senders: AtomicU64,
    /// Events the handlers refused.
    pub refused: AtomicU64,
    /// Repeats of handled messages.
    pub duplicates: AtomicU64,
    /// Handler failures (trap, limits).
    pub handler_failures: AtomicU64,
    /// Events handled (counted once their outputs are stored, sent and notified).
    pub handled: AtomicU64,
    /// Admin requests (invites, connections, history) refused.
    pub admin_refused: AtomicU64,
    /// Calls now active.
    pub active_calls: AtomicI64,
    /// Time per handler run.
    pub handler_latency: Histogram,
    /// Times the vault's timer woke it to run the timeout handler (zero while nothing is due).
    pub timer_wakeups: AtomicU64,
    /// Sweeps after which the timeout handler still named a passed deadline (a handler defect;
    /// the vault then waits `sweep_every` instead of running it again at once).
    pub deadlines_left_standing: AtomicU64,
    /// Setups by outcome; index 0 outgoing, 1 incoming.
    setups: [[AtomicU64; 3]; 2],
}

impl VaultStats {
    /// Setups of `direction` that ended as `outcome` so far.
    pub fn setups(&self, direction: Direction, outcome: SetupOutcome) -> u64 {
        self.setups
            .get(dir_index(direction))
            .and_then(|row| row.get(outcome.index()))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts a call's move from `before` (None: new) to `after`.
    pub(crate) fn transition(&self, direction: Direction, before: Option<CallStatus>, after: CallStatus) {
        if before == Some(after) {
            return;
        }
        if before == Some(CallStatus::Active) {
            self.active_calls.fetch_sub(1, Ordering::Relaxed);
        }
        let outcome = match after {
            CallStatus::Active => {
                self.active_calls.fetch_add(1, Ordering::Relaxed);
                Some(SetupOutcome::Answered)
            }
            CallStatus::Rejected => Some(SetupOutcome::Rejected),
            CallStatus::Missed => Some(SetupOutcome::Missed),
            _ => None,
        };
        if let Some(o) = outcome
            && let Some(c) = self.setups.get(dir_index(direction)).and_then(|row| row.get(o.index()))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Outgoing => 0,
        Direction::Incoming => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_count_setups_once_and_track_active_calls() {
        let s = VaultStats::default();
        s.transition(Direction::Outgoing, None, CallStatus::Initiating);
        s.transition(Direction::Outgoing, Some(CallStatus::Initiating), CallStatus::Ringing);
        s.transition(Direction::Outgoing, Some(CallStatus::Ringing), CallStatus::Active);
        s.transition(Direction::Outgoing, Some(CallStatus::Active), CallStatus::Active);
        assert_eq!(s.active_calls.load(Ordering::Relaxed), 1);
        assert_eq!(s.setups(Direction::Outgoing, SetupOutcome::Answered), 1);
        s.transition(Direction::Outgoing, Some(CallStatus::Active), CallStatus::Ended);
        assert_eq!(s.active_calls.load(Ordering::Relaxed), 0);
        s.transition(Direction::Incoming, None, CallStatus::Rejected);
        assert_eq!(s.setups(Direction::Incoming, SetupOutcome::Rejected), 1);
        assert_eq!(s.setups(Direction::Outgoing, SetupOutcome::Rejected), 0);
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(2));
        let c = h.counts();
        assert_eq!(c[0], 2);
        assert_eq!(c[6], 1);
        assert_eq!(c[12], 1);
        assert!((h.sum_secs() - 2.003_09).abs() < 1e-9);
    }
}
