//! Counters a vault keeps about itself, read by the server's `/metrics`.
//!
//! Plain atomics: a vault never waits on a metrics reader, and a reader sees each counter
//! monotonic (gauges aside).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use callvault_protocol::fields::Direction;

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
    /// Time per handler run.
    pub handler_latency: Histogram,
    /// Times the vault's timer woke it to run the timeout handler (zero while nothing is due).
    pub timer_wakeups: AtomicU64,
    /// Sweeps after which the timeout handler still named a passed deadline (a handler defect;
    /// the vault then waits `sweep_every` instead of running it again at once).
    pub deadlines_left_standing: AtomicU64,
    /// Input bytes of the last handler run.
    pub last_input_bytes: AtomicU64,
    /// Fuel the last handler run consumed.
    pub last_fuel: AtomicU64,
    /// Events refused because their family holds as many live entities as it may.
    pub entity_bound: AtomicU64,
    /// Outputs refused because the handler had no right to them (an entity it was not given, a
    /// kind or bucket its manifest does not name).
    pub outputs_refused: AtomicU64,
    /// Messages sent again because their peer had not acknowledged them yet.
    pub outbox_retries: AtomicU64,
    /// Messages given up unacknowledged (after a day, or past the outbox's bound).
    pub outbox_given_up: AtomicU64,
    /// Events whose writes failed (nothing of them was announced; the vault then reads its
    /// memory again from the store).
    pub write_failures: AtomicU64,
    /// Families' counters (`<family>.<name>`), from their handlers' `count` outputs.
    counters: std::sync::Mutex<BTreeMap<String, i64>>,
    /// Families' gauges (`<family>.<tag>`: how many entities carry the tag).
    gauges: std::sync::Mutex<BTreeMap<String, i64>>,
}

impl VaultStats {
    /// Setups of `direction` that ended as `outcome` so far (the `call` family's counters).
    pub fn setups(&self, direction: Direction, outcome: SetupOutcome) -> u64 {
        let dir = match direction {
            Direction::Outgoing => "outgoing",
            Direction::Incoming => "incoming",
        };
        u64::try_from(self.counter(&format!("call.setup.{dir}.{}", outcome.as_str()))).unwrap_or(0)
    }

    /// Calls now active (the `call` family's `active` tag).
    pub fn active_calls(&self) -> i64 {
        self.gauge("call.active")
    }

    /// A family's counter.
    pub fn counter(&self, name: &str) -> i64 {
        self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).copied().unwrap_or(0)
    }

    /// Adds to a family's counter.
    pub fn count(&self, name: String, delta: i64) {
        let mut c = self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = c.entry(name).or_insert(0);
        *v = v.saturating_add(delta);
    }

    /// A family's gauge.
    pub fn gauge(&self, name: &str) -> i64 {
        self.gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).copied().unwrap_or(0)
    }

    /// Sets a family's gauge.
    pub fn set_gauge(&self, name: String, value: i64) {
        self.gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_gauges_set() {
        let s = VaultStats::default();
        s.count("call.setup.outgoing.answered".into(), 1);
        s.count("call.setup.outgoing.answered".into(), 1);
        assert_eq!(s.setups(Direction::Outgoing, SetupOutcome::Answered), 2);
        assert_eq!(s.setups(Direction::Incoming, SetupOutcome::Answered), 0);
        s.set_gauge("call.active".into(), 1);
        assert_eq!(s.active_calls(), 1);
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
