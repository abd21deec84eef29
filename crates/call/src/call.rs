//! [`Call`]: one call's state and its transitions, one vault's view.

use std::collections::VecDeque;

use callvault_protocol::calling::*;
use callvault_protocol::fields::{
    CallStatus, CallType, Direction, DurationSeconds, EndReason, EndedStatus, HangupReason, PeerProfile, RejectReason,
    SignalType,
};
use callvault_protocol::{CallId, Guid, MessageId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::switchboard::Output;
use crate::{CallConfig, CallError, Disposition, Event};

/// A caller's end request that awaits the callee's verdict (see the crate docs, "Who decides").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// When the request was made.
    pub since: Timestamp,
    /// What it was.
    pub cause: PendingCause,
}

/// Why a caller gave up on its unanswered call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingCause {
    /// The caller's app hung up before an answer.
    Cancelled,
    /// The caller's ring timeout fired.
    TimedOut,
    /// The peer called us at the same time and its call survives glare.
    Superseded {
        /// The surviving call.
        by: CallId,
    },
}

/// Whether each app's `key_exchange` signal has passed through this vault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct KeyExchange {
    sent: bool,
    received: bool,
}

/// One call: the [`CallRecord`] the user sees, plus what the machine needs to resume after a
/// restart (pending end, buffered signals, recent message_ids). Serializable as a whole; the
/// vault keeps the record in `calls` and the whole in `handler-state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    record: CallRecord,
    local: Guid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    buffered: Vec<CallSignal>,
    #[serde(default)]
    seen: VecDeque<MessageId>,
    #[serde(default)]
    key_exchange: KeyExchange,
    #[serde(default)]
    next_seq: u64,
}

/// Where outputs go while a transition runs.
pub(crate) type Outbox = VecDeque<Output>;

impl Call {
    /// A new call, created by the message `first`.
    fn new(
        local: Guid,
        first: &MessageId,
        call_id: CallId,
        peer: Guid,
        direction: Direction,
        call_type: CallType,
        now: Timestamp,
    ) -> Self {
        let status = match direction {
            Direction::Outgoing => CallStatus::Initiating,
            Direction::Incoming => CallStatus::Ringing,
        };
        Self {
            record: CallRecord {
                call_id,
                peer_guid: peer,
                direction,
                call_type,
                status,
                created_at: now,
                answered_at: None,
                ended_at: None,
                duration_seconds: None,
                end_reason: None,
                key_exchange_complete: false,
                ext: None,
            },
            local,
            pending: None,
            buffered: Vec::new(),
            seen: VecDeque::from([first.clone()]),
            key_exchange: KeyExchange::default(),
            next_seq: 0,
        }
    }

    /// The record as the user's history shows it.
    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    /// The call's id.
    pub fn id(&self) -> &CallId {
        &self.record.call_id
    }

    /// The other party.
    pub fn peer(&self) -> &Guid {
        &self.record.peer_guid
    }

    /// The local user.
    pub fn local(&self) -> &Guid {
        &self.local
    }

    /// The caller's end request awaiting the callee's verdict, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// Peer signals held until the accept that they overtook.
    pub fn buffered_signals(&self) -> usize {
        self.buffered.len()
    }

    /// Unanswered and nobody has given up on it: it rings and counts for glare.
    pub fn is_live_unanswered(&self) -> bool {
        self.is_unanswered() && self.pending.is_none()
    }

    /// One's own call, not answered yet and not being given up: taking another call cancels it.
    pub fn is_dialing(&self) -> bool {
        self.outgoing() && self.is_live_unanswered()
    }

    /// Answered and not over.
    pub fn is_active(&self) -> bool {
        self.record.status == CallStatus::Active
    }

    fn is_unanswered(&self) -> bool {
        matches!(self.record.status, CallStatus::Initiating | CallStatus::Ringing)
    }

    fn is_terminal(&self) -> bool {
        self.record.status.is_terminal()
    }

    fn outgoing(&self) -> bool {
        self.record.direction == Direction::Outgoing
    }

    /// When this call next needs a tick, if ever.
    pub fn deadline(&self, cfg: &CallConfig) -> Option<Timestamp> {
        if !self.is_unanswered() {
            return None;
        }
        let ring_deadline = self.record.created_at.saturating_add(cfg.ring_timeout);
        Some(match &self.pending {
            // The callee may still be ringing (e.g. our cancel overtook our own call.incoming, or
            // the call we lost glare to ended before the peer saw ours): its verdict can come as
            // late as its own ring timeout, so wait at least that long plus the grace.
            Some(p) => p.since.max(ring_deadline).saturating_add(cfg.verdict_grace),
            None => ring_deadline,
        })
    }

    pub(crate) fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    pub(crate) fn remember(&mut self, id: MessageId, cfg: &CallConfig) {
        if self.seen.contains(&id) {
            return;
        }
        self.seen.push_back(id);
        while self.seen.len() > cfg.replay_window.max(1) {
            self.seen.pop_front();
        }
    }

    fn refused(&self, event: Event) -> CallError {
        CallError::InvalidTransition { call_id: self.id().clone(), status: self.record.status, event }
    }

    // ----- creation -------------------------------------------------------------------------

    /// The app asked to call; the switchboard has checked busy and glare.
    pub(crate) fn outgoing_call(local: Guid, r: &CallInitiateRequest, now: Timestamp, out: &mut Outbox) -> Self {
        let mut c = Self::new(
            local,
            &r.message_id,
            r.call_id.clone(),
            r.peer_guid.clone(),
            Direction::Outgoing,
            r.call_type,
            now,
        );
        let m = PeerMessage::Incoming(CallIncomingSignal {
            kind: tags::Incoming,
            message_id: c.next_id(),
            timestamp: now,
            call_id: c.id().clone(),
            from_guid: c.local.clone(),
            call_type: r.call_type,
            ext: None,
        });
        c.send(out, m);
        let n = AppNotification::Initiated(CallInitiatedNotification {
            kind: tags::Initiated,
            message_id: c.next_id(),
            timestamp: now,
            call_id: c.id().clone(),
            peer_guid: c.peer().clone(),
            call_type: r.call_type,
            ext: None,
        });
        c.notify(out, n);
        c
    }

    /// A peer's call rings here. `replaces` is our own outgoing call it superseded (glare).
    pub(crate) fn incoming_call(
        local: Guid,
        m: &CallIncomingSignal,
        profile: PeerProfile,
        replaces: Option<CallId>,
        now: Timestamp,
        out: &mut Outbox,
    ) -> Self {
        let mut c = Self::new(
            local,
            &m.message_id,
            m.call_id.clone(),
            m.from_guid.clone(),
            Direction::Incoming,
            m.call_type,
            now,
        );
        let ringing = PeerMessage::Ringing(CallRingingSignal {
            kind: tags::Ringing,
            message_id: c.next_id(),
            timestamp: now,
            call_id: c.id().clone(),
            from_guid: c.local.clone(),
            ext: None,
        });
        c.send(out, ringing);
        let n = AppNotification::Incoming(CallIncomingNotification {
            kind: tags::Incoming,
            message_id: c.next_id(),
            timestamp: now,
            call_id: c.id().clone(),
            peer_guid: c.peer().clone(),
            call_type: m.call_type,
            peer_profile: profile,
            replaces_call_id: replaces,
            ext: None,
        });
        c.notify(out, n);
        c
    }

    /// A peer's call that we refuse on arrival (busy, or it loses glare). It is stored so that a
    /// replay of it has no effect; the app hears of it only when we were busy.
    pub(crate) fn refused_call(
        local: Guid,
        m: &CallIncomingSignal,
        reason: RejectReason,
        now: Timestamp,
        out: &mut Outbox,
    ) -> Self {
        let mut c = Self::new(
            local,
            &m.message_id,
            m.call_id.clone(),
            m.from_guid.clone(),
            Direction::Incoming,
            m.call_type,
            now,
        );
        c.finish(now, CallStatus::Rejected, reason.into());
        c.send_reject(now, reason, out);
        if reason == RejectReason::Busy {
            c.notify_rejected(now, reason, None, out);
        }
        c
    }

    // ----- app requests ---------------------------------------------------------------------

    pub(crate) fn accept(&mut self, now: Timestamp, r: &CallAcceptRequest, out: &mut Outbox) -> Result<(), CallError> {
        if self.outgoing() || self.record.status != CallStatus::Ringing {
            return Err(self.refused(Event::AppAccept));
        }
        self.record.status = CallStatus::Active;
        self.record.answered_at = Some(now);
        let m = PeerMessage::Accept(CallAcceptedSignal {
            kind: tags::Accept,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            from_guid: self.local.clone(),
            public_key: r.public_key.clone(),
            key_id: r.key_id.clone(),
            ext: None,
        });
        self.send(out, m);
        self.notify_accepted(now, None, out);
        Ok(())
    }

    pub(crate) fn reject(&mut self, now: Timestamp, reason: RejectReason, out: &mut Outbox) -> Result<(), CallError> {
        if self.outgoing() || self.record.status != CallStatus::Ringing {
            return Err(self.refused(Event::AppReject));
        }
        self.finish(now, CallStatus::Rejected, reason.into());
        self.send_reject(now, reason, out);
        self.notify_rejected(now, reason, None, out);
        Ok(())
    }

    pub(crate) fn end(&mut self, now: Timestamp, out: &mut Outbox) -> Result<Disposition, CallError> {
        match (self.record.direction, self.record.status) {
            (_, s) if s.is_terminal() => Err(self.refused(Event::AppEnd)),
            (Direction::Incoming, CallStatus::Ringing) => {
                self.reject(now, RejectReason::Declined, out)?;
                Ok(Disposition::Applied)
            }
            (Direction::Outgoing, _) if self.pending.is_some() => Ok(Disposition::Ignored),
            (Direction::Outgoing, CallStatus::Initiating | CallStatus::Ringing) => {
                self.give_up(now, PendingCause::Cancelled, out);
                Ok(Disposition::Applied)
            }
            _ => {
                let reason = if self.outgoing() { HangupReason::Caller } else { HangupReason::Callee };
                let d = self.finish_answered(now, reason.into());
                self.send_end(now, reason, Some(d), out);
                self.notify_ended(now, out);
                Ok(Disposition::Applied)
            }
        }
    }

    pub(crate) fn signal_from_app(
        &mut self,
        now: Timestamp,
        r: &CallSignalRequest,
        out: &mut Outbox,
    ) -> Result<(), CallError> {
        if !self.is_active() {
            return Err(self.refused(Event::AppSignal));
        }
        if r.signal_type == SignalType::KeyExchange {
            self.key_exchange.sent = true;
            self.update_key_exchange();
        }
        let m = PeerMessage::Signal(CallSignal {
            kind: tags::Signal,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            from_guid: self.local.clone(),
            signal_type: r.signal_type,
            payload: r.payload.clone(),
            ext: None,
        });
        self.send(out, m);
        Ok(())
    }

    // ----- peer messages --------------------------------------------------------------------

    pub(crate) fn on_ringing(&mut self, now: Timestamp, out: &mut Outbox) -> Result<Disposition, CallError> {
        if !self.outgoing() {
            return Err(self.refused(Event::PeerRinging));
        }
        if self.record.status != CallStatus::Initiating || self.pending.is_some() {
            return Ok(Disposition::Ignored);
        }
        self.record.status = CallStatus::Ringing;
        let n = AppNotification::Ringing(CallRingingNotification {
            kind: tags::Ringing,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            peer_guid: self.peer().clone(),
            ext: None,
        });
        self.notify(out, n);
        Ok(Disposition::Applied)
    }

    pub(crate) fn on_accept(
        &mut self,
        now: Timestamp,
        m: &CallAcceptedSignal,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if !self.outgoing() {
            return Err(self.refused(Event::PeerAccept));
        }
        if !self.is_unanswered() {
            return Ok(Disposition::Ignored);
        }
        self.record.status = CallStatus::Active;
        self.record.answered_at = Some(now);
        if self.pending.is_some() {
            // We gave up before the answer reached us; the callee's verdict is "answered", so
            // the call is answered and over at once.
            let d = self.finish_answered(now, EndReason::Caller);
            self.send_end(now, HangupReason::Caller, Some(d), out);
            return Ok(Disposition::Applied);
        }
        let overtaken = std::mem::take(&mut self.buffered);
        for s in &overtaken {
            self.note_received(s.signal_type);
        }
        self.notify_accepted(now, Some(m), out);
        for s in overtaken {
            self.notify_signal(now, s, out);
        }
        Ok(Disposition::Applied)
    }

    pub(crate) fn on_reject(
        &mut self,
        now: Timestamp,
        m: &CallRejectedSignal,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if !self.outgoing() || self.is_active() {
            return Err(self.refused(Event::PeerReject));
        }
        if self.is_terminal() {
            return Ok(Disposition::Ignored);
        }
        let told = self.pending.is_some();
        self.finish(now, CallStatus::Rejected, m.reason.into());
        if !told {
            self.notify_rejected(now, m.reason, None, out);
        }
        Ok(Disposition::Applied)
    }

    pub(crate) fn on_end(
        &mut self,
        now: Timestamp,
        m: &CallEndedSignal,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if self.is_terminal() {
            return Ok(Disposition::Ignored);
        }
        let reason: EndReason = m.reason.into();
        let told = self.pending.is_some();
        if self.is_active() {
            let d = self.finish_answered(now, reason);
            if !self.outgoing() && m.duration_seconds.is_none() {
                // The caller gave up without seeing our answer: it waits for our verdict.
                self.send_end(now, m.reason, Some(d), out);
            }
        } else if let (true, Some(d)) = (self.outgoing(), m.duration_seconds) {
            // The callee answered and hung up; its accept has not reached us (or never will).
            self.record.answered_at = Some(now.saturating_sub(std::time::Duration::from_secs(u64::from(d.get()))));
            self.record.duration_seconds = Some(d);
            self.finish(now, CallStatus::Ended, reason);
        } else {
            self.finish(now, CallStatus::Missed, reason);
            if !self.outgoing() {
                // We decide how a ringing call ends; tell the caller, who may be waiting.
                self.send_end(now, m.reason, None, out);
            }
        }
        if !told {
            self.notify_ended(now, out);
        }
        Ok(Disposition::Applied)
    }

    pub(crate) fn on_signal(
        &mut self,
        now: Timestamp,
        m: &CallSignal,
        cfg: &CallConfig,
        out: &mut Outbox,
    ) -> Result<Disposition, CallError> {
        if self.is_active() {
            self.note_received(m.signal_type);
            self.notify_signal(now, m.clone(), out);
            return Ok(Disposition::Applied);
        }
        if self.is_terminal() || self.pending.is_some() {
            return Ok(Disposition::Ignored);
        }
        if !self.outgoing() {
            return Err(self.refused(Event::PeerSignal));
        }
        // The callee's signal overtook its accept: hold it until the accept arrives.
        if self.buffered.len() >= cfg.signal_buffer {
            return Err(CallError::SignalBufferFull { call_id: self.id().clone() });
        }
        self.buffered.push(m.clone());
        Ok(Disposition::Applied)
    }

    // ----- time and glare -------------------------------------------------------------------

    /// Acts on this call's deadline if it has passed; returns whether anything changed.
    pub(crate) fn on_tick(&mut self, now: Timestamp, cfg: &CallConfig, out: &mut Outbox) -> bool {
        let Some(deadline) = self.deadline(cfg) else { return false };
        if now < deadline {
            return false;
        }
        match (self.pending.take(), self.outgoing()) {
            (Some(p), _) => {
                // No verdict came: settle on what we asked for.
                let (status, reason) = match p.cause {
                    PendingCause::Cancelled => (CallStatus::Missed, EndReason::Caller),
                    PendingCause::TimedOut => (CallStatus::Missed, EndReason::Timeout),
                    PendingCause::Superseded { .. } => (CallStatus::Rejected, EndReason::Glare),
                };
                self.finish(now, status, reason);
            }
            (None, true) => self.give_up(now, PendingCause::TimedOut, out),
            (None, false) => {
                self.finish(now, CallStatus::Missed, EndReason::Timeout);
                self.send_end(now, HangupReason::Timeout, None, out);
                self.notify_ended(now, out);
            }
        }
        true
    }

    /// Our unanswered outgoing call lost glare to the peer's call `by`. The peer's vault, which
    /// decides our call's fate, refuses it with `glare`; until then it is pending.
    pub(crate) fn supersede(&mut self, now: Timestamp, by: CallId, out: &mut Outbox) {
        self.pending = Some(Pending { since: now, cause: PendingCause::Superseded { by: by.clone() } });
        self.notify_rejected(now, RejectReason::Glare, Some(by), out);
    }

    /// We decide this ringing incoming call: it loses glare to our new call `by`.
    pub(crate) fn lose_glare(&mut self, now: Timestamp, by: CallId, out: &mut Outbox) {
        self.finish(now, CallStatus::Rejected, EndReason::Glare);
        self.send_reject(now, RejectReason::Glare, out);
        self.notify_rejected(now, RejectReason::Glare, Some(by), out);
    }

    /// The caller gives up on its unanswered call: tell the app now, ask the callee, await its verdict.
    fn give_up(&mut self, now: Timestamp, cause: PendingCause, out: &mut Outbox) {
        let reason = match cause {
            PendingCause::TimedOut => HangupReason::Timeout,
            _ => HangupReason::Caller,
        };
        self.pending = Some(Pending { since: now, cause });
        self.send_end(now, reason, None, out);
        let n = self.ended_notification(now, EndedStatus::Missed, reason.into(), None);
        self.notify(out, n);
    }

    // ----- helpers --------------------------------------------------------------------------

    fn finish(&mut self, now: Timestamp, status: CallStatus, reason: EndReason) {
        self.record.status = status;
        self.record.ended_at = Some(now);
        self.record.end_reason = Some(reason);
        self.pending = None;
        self.buffered.clear();
    }

    fn finish_answered(&mut self, now: Timestamp, reason: EndReason) -> DurationSeconds {
        let answered = self.record.answered_at.unwrap_or(now);
        let d = DurationSeconds::saturating(now.whole_seconds_since(answered));
        self.record.duration_seconds = Some(d);
        self.finish(now, CallStatus::Ended, reason);
        d
    }

    fn note_received(&mut self, t: SignalType) {
        if t == SignalType::KeyExchange {
            self.key_exchange.received = true;
            self.update_key_exchange();
        }
    }

    fn update_key_exchange(&mut self) {
        self.record.key_exchange_complete = self.key_exchange.sent && self.key_exchange.received;
    }

    /// A message id derived from (local guid, call id, sequence): unique per sender without a
    /// random source, and the same after a restart because `next_seq` is persisted.
    fn next_id(&mut self) -> MessageId {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        derive_id(&self.local, self.id().to_bytes(), IdPurpose::Sequence(seq))
    }

    fn send(&self, out: &mut Outbox, message: PeerMessage) {
        out.push_back(Output::SendToPeer { to: self.peer().clone(), message });
    }

    fn notify(&self, out: &mut Outbox, n: AppNotification) {
        out.push_back(Output::NotifyApp(n));
    }

    fn send_reject(&mut self, now: Timestamp, reason: RejectReason, out: &mut Outbox) {
        let m = PeerMessage::Reject(CallRejectedSignal {
            kind: tags::Reject,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            from_guid: self.local.clone(),
            reason,
            ext: None,
        });
        self.send(out, m);
    }

    fn send_end(&mut self, now: Timestamp, reason: HangupReason, d: Option<DurationSeconds>, out: &mut Outbox) {
        let m = PeerMessage::End(CallEndedSignal {
            kind: tags::End,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            from_guid: self.local.clone(),
            reason,
            duration_seconds: d,
            ext: None,
        });
        self.send(out, m);
    }

    fn notify_accepted(&mut self, now: Timestamp, by_peer: Option<&CallAcceptedSignal>, out: &mut Outbox) {
        let n = AppNotification::Accepted(CallAcceptedNotification {
            kind: tags::Accepted,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            peer_guid: self.peer().clone(),
            public_key: by_peer.map(|m| m.public_key.clone()),
            key_id: by_peer.map(|m| m.key_id.clone()),
            ext: None,
        });
        self.notify(out, n);
    }

    fn notify_rejected(&mut self, now: Timestamp, reason: RejectReason, replaced_by: Option<CallId>, out: &mut Outbox) {
        let n = AppNotification::Rejected(CallRejectedNotification {
            kind: tags::Rejected,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            peer_guid: self.peer().clone(),
            reason,
            replaced_by,
            ext: None,
        });
        self.notify(out, n);
    }

    fn notify_ended(&mut self, now: Timestamp, out: &mut Outbox) {
        let status = if self.record.status == CallStatus::Ended { EndedStatus::Ended } else { EndedStatus::Missed };
        let reason = self.record.end_reason.unwrap_or(EndReason::Error);
        let n = self.ended_notification(now, status, reason, self.record.duration_seconds);
        self.notify(out, n);
    }

    fn ended_notification(
        &mut self,
        now: Timestamp,
        status: EndedStatus,
        reason: EndReason,
        d: Option<DurationSeconds>,
    ) -> AppNotification {
        AppNotification::Ended(CallEndedNotification {
            kind: tags::Ended,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            peer_guid: self.peer().clone(),
            status,
            reason,
            duration_seconds: d,
            ext: None,
        })
    }

    fn notify_signal(&mut self, now: Timestamp, s: CallSignal, out: &mut Outbox) {
        let n = AppNotification::Signal(CallSignalNotification {
            kind: tags::Signal,
            message_id: self.next_id(),
            timestamp: now,
            call_id: self.id().clone(),
            peer_guid: self.peer().clone(),
            signal_type: s.signal_type,
            payload: s.payload,
            ext: None,
        });
        self.notify(out, n);
    }
}

/// What a derived message id answers: a call's n-th message, or the error reply to a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdPurpose {
    /// The `seq`-th message a vault sends about one call.
    Sequence(u64),
    /// The `call.error` answering a request.
    Error,
    /// The `call.error` answering a call to someone who is not a connection.
    NotConnected,
}

/// A UUID-shaped id from SHA-256 over (purpose, local guid, call or message id, sequence), domain-separated. The
/// parts are fixed-size bytes, 52 in all, so this is one SHA-256 block: handlers derive several
/// ids per event under an interpreter, where each block costs thousands of instructions.
pub(crate) fn derive_id(local: &Guid, of: [u8; 16], purpose: IdPurpose) -> MessageId {
    let (tag, seq) = match purpose {
        IdPurpose::Sequence(n) => (0u8, n),
        IdPurpose::Error => (1, 0),
        IdPurpose::NotConnected => (2, 0),
    };
    let digest = Sha256::new()
        .chain_update(b"cvmid2")
        .chain_update([tag, 0])
        .chain_update(local.to_bytes())
        .chain_update(of)
        .chain_update(seq.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    MessageId::from_bytes(bytes)
}
