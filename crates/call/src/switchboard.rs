//! [`Switchboard`]: the calls of one vault, and the rules that span calls (busy, glare,
//! duplicates, unknown calls).

use std::collections::{BTreeMap, VecDeque};

use callvault_protocol::calling::*;
use callvault_protocol::fields::{Direction, ErrorText, PeerProfile, RejectReason};
use callvault_protocol::{CallId, Guid, Timestamp};

use crate::call::{IdPurpose, Outbox, derive_id};
use crate::{Call, CallConfig, CallError, Disposition};

/// What the vault feeds the switchboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A request from the user's app (`OwnerSpace.{guid}.forVault.call.*`).
    App(AppRequest),
    /// A message from a peer's vault, already unsealed, with the seal's author checked against
    /// `from_guid` and found in the connections bucket, whose profile comes along.
    Peer {
        /// The message.
        message: PeerMessage,
        /// The sender as the connections bucket shows it.
        profile: PeerProfile,
    },
    /// Time has passed; act on deadlines up to `now`.
    Tick,
}

/// What the switchboard asks the vault to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Persist this call (its record goes to the `calls` bucket).
    Store(Box<Call>),
    /// Seal and send to the peer's vault (`MessageSpace.{to}.call.<type>`).
    SendToPeer {
        /// The peer.
        to: Guid,
        /// The message.
        message: PeerMessage,
    },
    /// Publish to the user's app (`OwnerSpace.{guid}.forApp.call.<type>`).
    NotifyApp(AppNotification),
    /// Feed [`Input::Tick`] at or after this instant. A later `WakeAt` replaces earlier ones.
    WakeAt(Timestamp),
}

/// Why [`Switchboard::restore`] refused its calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A call belongs to another user's vault.
    #[error("call {0} belongs to another vault")]
    ForeignCall(CallId),
    /// Two calls share an id.
    #[error("call {0} appears twice")]
    DuplicateCall(CallId),
}

/// The calls of one user's vault.
///
/// Policies that span calls:
/// - **One active call, others waiting.** `initiate` is refused while a call is active; a call that
///   arrives meanwhile rings as a waiting call, which the user may decline, leave to time out, or
///   take: accepting it ends the call in progress first (there is no hold), and cancels the user's
///   own calls still ringing; a peer's answer that comes while another call is active is hung up.
/// - **A bound on unsettled calls.** With [`CallConfig::max_unsettled`] calls ringing or active,
///   a call that arrives is rejected `busy` and `initiate` is refused (`busy`); a peer with
///   [`CallConfig::max_ringing_per_peer`] calls already ringing here is rejected `busy` too.
/// - **Glare.** When both users call each other, the call with the lower `call_id` survives on
///   both sides. A losing outgoing call is superseded (the app gets `call.rejected` with
///   `replaced_by`, and the winning `call.incoming` carries `replaces_call_id`); a losing incoming
///   call is rejected `glare`. An `initiate` that would lose to a ringing incoming call from the
///   same peer is refused with [`CallError::Glare`] naming the call to accept.
/// - **Duplicates.** A message_id already processed for a call has no second effect; a second
///   `call.incoming` for a known call is ignored.
#[derive(Debug)]
pub struct Switchboard {
    local: Guid,
    config: CallConfig,
    calls: BTreeMap<CallId, Call>,
    outputs: VecDeque<Output>,
    scheduled: Option<Timestamp>,
    /// Unsettled calls of the vault as its kernel counts them (the switchboard may hold only
    /// the calls an event can touch).
    unsettled_elsewhere: usize,
}

impl Switchboard {
    /// An empty switchboard for the vault of `local`.
    pub fn new(local: Guid, config: CallConfig) -> Self {
        Self {
            local,
            config,
            calls: BTreeMap::new(),
            outputs: VecDeque::new(),
            scheduled: None,
            unsettled_elsewhere: 0,
        }
    }

    /// A switchboard resumed from stored calls (after a restart). Feed a [`Input::Tick`] next:
    /// deadlines that passed while the vault was down then fire.
    pub fn restore(
        local: Guid,
        config: CallConfig,
        calls: impl IntoIterator<Item = Call>,
    ) -> Result<Self, RestoreError> {
        let mut sb = Self::new(local, config);
        for call in calls {
            if call.local() != &sb.local {
                return Err(RestoreError::ForeignCall(call.id().clone()));
            }
            if sb.calls.insert(call.id().clone(), call.clone()).is_some() {
                return Err(RestoreError::DuplicateCall(call.id().clone()));
            }
        }
        sb.schedule();
        Ok(sb)
    }

    /// Tells the switchboard how many calls of the vault are unsettled in all, when it holds only
    /// some of them (the vault kernel gives a handler only the calls its event can touch).
    pub fn set_unsettled(&mut self, count: usize) {
        self.unsettled_elsewhere = count;
    }

    /// The local user.
    pub fn local(&self) -> &Guid {
        &self.local
    }

    /// The configuration.
    pub fn config(&self) -> &CallConfig {
        &self.config
    }

    /// A call by id.
    pub fn call(&self, id: &CallId) -> Option<&Call> {
        self.calls.get(id)
    }

    /// Every call held, by id.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    /// The earliest deadline of any call.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.calls.values().filter_map(|c| c.deadline(&self.config)).min()
    }

    /// Drops terminal calls that ended before `ended_before` from memory (the vault keeps their
    /// records in the `calls` bucket). Keep at least `ring_timeout + max_clock_skew` of history,
    /// so a replayed `call.incoming` still finds its call (older ones are refused as stale).
    pub fn prune(&mut self, ended_before: Timestamp) {
        self.calls.retain(|_, c| c.record().ended_at.is_none_or(|t| t >= ended_before));
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Handles one input at `now`. A refused input changes no call; a refused app request also
    /// queues a `call.error` notification for the app.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Result<Disposition, CallError> {
        let mut out = Outbox::new();
        let result = match input {
            Input::App(req) => {
                let r = self.handle_app(now, &req, &mut out);
                if let Err(e) = &r {
                    out.clear();
                    out.push_back(Output::NotifyApp(self.error_notification(now, &req, e)));
                }
                r
            }
            Input::Peer { message, profile } => {
                let r = self.handle_peer(now, &message, profile, &mut out);
                if r.is_err() {
                    out.clear();
                }
                r
            }
            Input::Tick => {
                for call in self.calls.values_mut() {
                    let mark = out.len();
                    if call.on_tick(now, &self.config, &mut out) {
                        stored(&mut out, mark, call);
                    }
                }
                Ok(Disposition::Applied)
            }
        };
        // A refused input changes nothing: the calls are taken back from the outbox only on success.
        if result.is_ok() {
            for o in &out {
                if let Output::Store(call) = o {
                    self.calls.insert(call.id().clone(), (**call).clone());
                }
            }
        }
        self.outputs.extend(out);
        self.schedule();
        result
    }

    fn schedule(&mut self) {
        let next = self.next_deadline();
        if next != self.scheduled {
            self.scheduled = next;
            if let Some(t) = next {
                self.outputs.push_back(Output::WakeAt(t));
            }
        }
    }

    fn active_call(&self) -> Option<&Call> {
        self.calls.values().find(|c| c.is_active())
    }

    /// Calls ringing or active (not yet settled).
    fn unsettled(&self) -> usize {
        let held = self.calls.values().filter(|c| !c.record().status.is_terminal()).count();
        held.max(self.unsettled_elsewhere)
    }

    /// A working copy of a call; the switchboard adopts it from the `Store` output on success.
    fn copy_of(&self, id: &CallId) -> Result<Call, CallError> {
        self.calls.get(id).cloned().ok_or_else(|| CallError::UnknownCall { call_id: id.clone() })
    }

    fn handle_app(&mut self, now: Timestamp, req: &AppRequest, out: &mut Outbox) -> Result<Disposition, CallError> {
        if let AppRequest::Initiate(r) = req {
            return self.initiate(now, r, out);
        }
        let mut call = self.copy_of(req.call_id())?;
        if call.has_seen(req.message_id()) {
            return Ok(Disposition::Duplicate);
        }
        call.remember(req.message_id().clone(), &self.config);
        let mark = out.len();
        let disposition = match req {
            AppRequest::Initiate(r) => return self.initiate(now, r, out),
            AppRequest::Accept(r) => {
                // The call must be one to take before the one in progress ends for it.
                let mut accepted = Outbox::new();
                call.accept(now, r, &mut accepted)?;
                // One's own calls still ringing are cancelled: answered later, they would make a
                // second active call.
                let dialing: Vec<CallId> =
                    self.calls.values().filter(|c| c.is_dialing()).map(|c| c.id().clone()).collect();
                for id in dialing {
                    let mut mine = self.copy_of(&id)?;
                    let at = out.len();
                    if mine.end(now, out)? == Disposition::Applied {
                        stored(out, at, &mine);
                    }
                }
                let current = self.active_call().map(|a| a.id().clone()).filter(|a| a != call.id());
                if let Some(current) = current {
                    let mut current = self.copy_of(&current)?;
                    let at = out.len();
                    current.end(now, out)?;
                    stored(out, at, &current);
                }
                let at = out.len();
                out.extend(accepted);
                stored(out, at, &call);
                return Ok(Disposition::Applied);
            }
            AppRequest::Reject(r) => {
                call.reject(now, r.reason.unwrap_or(RejectReason::Declined), out).map(|()| Disposition::Applied)
            }
            AppRequest::End(_) => call.end(now, out),
            AppRequest::Signal(r) => call.signal_from_app(now, r, out).map(|()| Disposition::Applied),
        }?;
        if disposition == Disposition::Applied {
            stored(out, mark, &call);
        }
        Ok(disposition)
    }

    fn initiate(
        &mut self,
        now: Timestamp,
        r: &CallInitiateRequest,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if r.peer_guid == self.local {
            return Err(CallError::SelfCall);
        }
        if let Some(existing) = self.calls.get(&r.call_id) {
            if existing.has_seen(&r.message_id) {
                return Ok(Disposition::Duplicate);
            }
            return Err(CallError::DuplicateCall { call_id: r.call_id.clone() });
        }
        if let Some(active) = self.active_call() {
            return Err(CallError::AlreadyInCall { active: active.id().clone() });
        }
        if self.unsettled() >= self.config.max_unsettled {
            return Err(CallError::TooManyCalls { limit: self.config.max_unsettled });
        }
        let same_peer: Vec<&Call> =
            self.calls.values().filter(|c| c.peer() == &r.peer_guid && c.is_live_unanswered()).collect();
        if let Some(ours) = same_peer.iter().find(|c| c.record().direction == Direction::Outgoing) {
            return Err(CallError::CallInProgress { existing: ours.id().clone() });
        }
        // Glare with the peer's ringing call: the lower call_id survives.
        let mut losers = Vec::new();
        for theirs in same_peer {
            if theirs.id() < &r.call_id {
                return Err(CallError::Glare { surviving: theirs.id().clone() });
            }
            losers.push(theirs.id().clone());
        }
        for id in losers {
            let mut theirs = self.copy_of(&id)?;
            let mark = out.len();
            theirs.lose_glare(now, r.call_id.clone(), out);
            stored(out, mark, &theirs);
        }
        let mark = out.len();
        let call = Call::outgoing_call(self.local.clone(), r, now, out);
        stored(out, mark, &call);
        Ok(Disposition::Applied)
    }

    fn handle_peer(
        &mut self,
        now: Timestamp,
        message: &PeerMessage,
        profile: PeerProfile,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if message.from_guid() == &self.local {
            return Err(CallError::SelfCall);
        }
        if let PeerMessage::Incoming(m) = message {
            return self.incoming(now, m, profile, out);
        }
        let mut call = self.copy_of(message.call_id())?;
        if call.peer() != message.from_guid() {
            return Err(CallError::WrongPeer { call_id: call.id().clone() });
        }
        if call.has_seen(message.message_id()) {
            return Ok(Disposition::Duplicate);
        }
        call.remember(message.message_id().clone(), &self.config);
        let mark = out.len();
        let disposition = match message {
            PeerMessage::Incoming(m) => return self.incoming(now, m, profile, out),
            PeerMessage::Ringing(_) => call.on_ringing(now, out),
            PeerMessage::Accept(m) => {
                let d = call.on_accept(now, m, out)?;
                // Answered while another call is active (a race with taking that one): hung up at
                // once, so that one call stays active.
                if d == Disposition::Applied
                    && call.is_active()
                    && self.active_call().is_some_and(|a| a.id() != call.id())
                {
                    call.end(now, out)?;
                }
                Ok(d)
            }
            PeerMessage::Reject(m) => call.on_reject(now, m, out),
            PeerMessage::End(m) => call.on_end(now, m, out),
            PeerMessage::Signal(m) => call.on_signal(now, m, &self.config, out),
        }?;
        if disposition == Disposition::Applied {
            stored(out, mark, &call);
        }
        Ok(disposition)
    }

    fn incoming(
        &mut self,
        now: Timestamp,
        m: &CallIncomingSignal,
        profile: PeerProfile,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if let Some(existing) = self.calls.get(&m.call_id) {
            if existing.peer() != &m.from_guid {
                return Err(CallError::DuplicateCall { call_id: m.call_id.clone() });
            }
            return Ok(if existing.has_seen(&m.message_id) { Disposition::Duplicate } else { Disposition::Ignored });
        }
        let oldest = now.saturating_sub(self.config.ring_timeout).saturating_sub(self.config.max_clock_skew);
        let newest = now.saturating_add(self.config.max_clock_skew);
        if m.timestamp < oldest || m.timestamp > newest {
            return Err(CallError::Stale { call_id: m.call_id.clone() });
        }
        // Our own unanswered calls to this peer: glare candidates.
        let ours: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| {
                c.peer() == &m.from_guid && c.is_live_unanswered() && c.record().direction == Direction::Outgoing
            })
            .map(|c| c.id().clone())
            .collect();
        let theirs_ringing = self
            .calls
            .values()
            .filter(|c| {
                c.peer() == &m.from_guid && c.is_live_unanswered() && c.record().direction == Direction::Incoming
            })
            .count();
        // A call during another rings as a waiting call: only the bounds make a vault busy.
        let busy = self.unsettled() >= self.config.max_unsettled || theirs_ringing >= self.config.max_ringing_per_peer;
        if busy || ours.iter().any(|o| o < &m.call_id) {
            let reason = if busy { RejectReason::Busy } else { RejectReason::Glare };
            let mark = out.len();
            let call = Call::refused_call(self.local.clone(), m, reason, now, out);
            stored(out, mark, &call);
            return Ok(Disposition::Applied);
        }
        for id in &ours {
            let mut mine = self.copy_of(id)?;
            let mark = out.len();
            mine.supersede(now, m.call_id.clone(), out);
            stored(out, mark, &mine);
        }
        let mark = out.len();
        let call = Call::incoming_call(self.local.clone(), m, profile, ours.first().cloned(), now, out);
        stored(out, mark, &call);
        Ok(Disposition::Applied)
    }

    fn error_notification(&self, now: Timestamp, req: &AppRequest, e: &CallError) -> AppNotification {
        AppNotification::Error(CallErrorNotification {
            kind: tags::Error,
            message_id: derive_id(&self.local, req.message_id().to_bytes(), IdPurpose::Error),
            timestamp: now,
            in_reply_to: req.message_id().clone(),
            code: e.code(),
            message: ErrorText::truncated(&e.to_string()),
            call_id: Some(req.call_id().clone()),
            ext: None,
        })
    }
}

/// Puts a `Store` of `call`'s final state before the outputs its transition queued from `mark`.
fn stored(out: &mut Outbox, mark: usize, call: &Call) {
    out.insert(mark, Output::Store(Box::new(call.clone())));
}
