//! Timeouts and limits of the lifecycle.

use std::time::Duration;

/// Timeouts and limits. [`Default`] gives the seed's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallConfig {
    /// How long an unanswered call rings before it is missed (seed: 60 s).
    pub ring_timeout: Duration,
    /// How long a caller that gave up (cancelled, timed out, lost glare) waits for the callee's
    /// verdict before it settles the record on its own, counted from the later of the request and
    /// the ring timeout. Must exceed two message delays.
    pub verdict_grace: Duration,
    /// How far a peer's clock may be off: a `call.incoming` whose timestamp is older than
    /// `ring_timeout + max_clock_skew`, or newer than `now + max_clock_skew`, is refused as stale.
    pub max_clock_skew: Duration,
    /// Peer signals held while our outgoing call waits for the accept that they overtook.
    pub signal_buffer: usize,
    /// message_ids remembered per call to drop duplicates.
    pub replay_window: usize,
    /// Calls ringing or active at once in one vault. Past it an incoming call is rejected `busy`
    /// and an `initiate` refused `busy`. A handler gets only the calls its event can touch, so
    /// this is a memory bound (the vault kernel keeps each unsettled call's tags and timer in
    /// memory), not a fuel bound: the kernel's own bound on live entities
    /// (`callvault_kernel::manifest::MAX_LIVE`).
    pub max_unsettled: usize,
    /// Calls from one peer ringing at once. An honest peer's vault never has two (it refuses a
    /// second call to the same peer while one rings); a few allow for an `end` overtaken by the
    /// next call. Past it that peer's call is rejected `busy`, so one connection cannot take every
    /// slot of [`CallConfig::max_unsettled`].
    pub max_ringing_per_peer: usize,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(60),
            verdict_grace: Duration::from_secs(30),
            max_clock_skew: Duration::from_secs(30),
            signal_buffer: 32,
            replay_window: 64,
            max_unsettled: 10_000,
            max_ringing_per_peer: 4,
        }
    }
}
