//! Two vaults (A calls B unless a test says otherwise) wired by an inspectable wire, in virtual time.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use callvault_call::{CallConfig, CallError, Disposition, Input, Output, Switchboard};
use callvault_protocol::calling::*;
use callvault_protocol::fields::{
    CallStatus, CallType, DisplayName, PeerProfile, PublicKey, RejectReason, SignalPayload, SignalType,
};
use callvault_protocol::{CallId, Guid, KeyId, MessageId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

pub struct Party {
    pub guid: Guid,
    pub sb: Switchboard,
    /// Notifications the app received, in order.
    pub app: Vec<AppNotification>,
    /// The calls bucket as the Store outputs left it.
    pub bucket: BTreeMap<CallId, CallRecord>,
    /// Every stored version of each record, to check that terminal states stay terminal.
    pub history: BTreeMap<CallId, Vec<CallRecord>>,
    pub wake: Option<Timestamp>,
}

impl Party {
    fn new(seed: u8, config: CallConfig) -> Self {
        let guid = Guid::from_public_key(&[seed; 32]);
        Self {
            sb: Switchboard::new(guid.clone(), config),
            guid,
            app: Vec::new(),
            bucket: BTreeMap::new(),
            history: BTreeMap::new(),
            wake: None,
        }
    }

    pub fn record(&self, id: &CallId) -> &CallRecord {
        self.bucket.get(id).unwrap_or_else(|| panic!("no record of {id}"))
    }

    pub fn status(&self, id: &CallId) -> CallStatus {
        self.record(id).status
    }

    /// The wire names of the notifications received, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.app.iter().map(|n| n.kind().message_type()).collect()
    }

    pub fn last(&self) -> &AppNotification {
        self.app.last().expect("a notification")
    }
}

pub fn profile(name: &str) -> PeerProfile {
    PeerProfile { display_name: DisplayName::new(name).unwrap(), avatar_url: None }
}

pub struct Pair {
    pub a: Party,
    pub b: Party,
    pub now: Timestamp,
    /// Messages in flight: (recipient, message).
    pub wire: VecDeque<(Side, PeerMessage)>,
    /// Everything ever sent between A and B, for replay tests.
    pub sent: Vec<(Side, PeerMessage)>,
    /// Messages to vaults other than A and B.
    pub elsewhere: Vec<(Guid, PeerMessage)>,
    next_id: u32,
}

pub fn call_id(n: u8) -> CallId {
    CallId::from_bytes([n; 16])
}

impl Pair {
    pub fn new() -> Self {
        Self::with_config(CallConfig::default())
    }

    pub fn with_config(config: CallConfig) -> Self {
        Self {
            a: Party::new(1, config.clone()),
            b: Party::new(2, config),
            now: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
            wire: VecDeque::new(),
            sent: Vec::new(),
            elsewhere: Vec::new(),
            next_id: 0,
        }
    }

    pub fn party(&self, side: Side) -> &Party {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    pub fn party_mut(&mut self, side: Side) -> &mut Party {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    pub fn guid(&self, side: Side) -> Guid {
        self.party(side).guid.clone()
    }

    fn message_id(&mut self) -> MessageId {
        self.next_id += 1;
        let mut b = [0xa0; 16];
        b[..4].copy_from_slice(&self.next_id.to_be_bytes());
        MessageId::from_bytes(b)
    }

    /// Feeds an input to one side and drains its outputs.
    pub fn input(&mut self, side: Side, input: Input) -> Result<Disposition, CallError> {
        let now = self.now;
        let p = self.party_mut(side);
        let r = p.sb.handle(now, input);
        let mut sends = Vec::new();
        while let Some(o) = p.sb.poll_output() {
            match o {
                Output::Store(call) => {
                    let rec = call.record().clone();
                    p.history.entry(rec.call_id.clone()).or_default().push(rec.clone());
                    p.bucket.insert(rec.call_id.clone(), rec);
                }
                Output::SendToPeer { to, message } => sends.push((to, message)),
                Output::NotifyApp(n) => p.app.push(n),
                Output::WakeAt(t) => p.wake = Some(t),
            }
        }
        let other = side.other();
        let other_guid = self.guid(other);
        for (to, message) in sends {
            if to != other_guid {
                self.elsewhere.push((to, message));
                continue;
            }
            self.sent.push((other, message.clone()));
            self.wire.push_back((other, message));
        }
        r
    }

    pub fn app(&mut self, side: Side, req: AppRequest) -> Result<Disposition, CallError> {
        self.input(side, Input::App(req))
    }

    pub fn deliver(&mut self, to: Side, message: PeerMessage) -> Result<Disposition, CallError> {
        let name = if to == Side::A { "Bob" } else { "Alice" };
        self.input(to, Input::Peer { message, profile: profile(name) })
    }

    /// Delivers the oldest message in flight.
    pub fn deliver_next(&mut self) -> Option<Result<Disposition, CallError>> {
        let (to, m) = self.wire.pop_front()?;
        Some(self.deliver(to, m))
    }

    /// Delivers until nothing is in flight; every delivery must succeed.
    pub fn settle(&mut self) {
        while let Some(r) = self.deliver_next() {
            r.expect("delivery refused");
        }
    }

    /// Advances the clock and ticks both sides (and settles the wire when `settle`).
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        self.input(Side::A, Input::Tick).unwrap();
        self.input(Side::B, Input::Tick).unwrap();
    }

    // ----- requests -----

    pub fn initiate(&mut self, from: Side, id: &CallId) -> AppRequest {
        AppRequest::Initiate(CallInitiateRequest {
            kind: tags::Initiate,
            message_id: self.message_id(),
            timestamp: self.now,
            call_id: id.clone(),
            peer_guid: self.guid(from.other()),
            call_type: CallType::Audio,
            ext: None,
        })
    }

    pub fn accept(&mut self, id: &CallId) -> AppRequest {
        AppRequest::Accept(CallAcceptRequest {
            kind: tags::Accept,
            message_id: self.message_id(),
            timestamp: self.now,
            call_id: id.clone(),
            public_key: PublicKey::new("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=").unwrap(),
            key_id: KeyId::from_bytes([9; 16]),
            ext: None,
        })
    }

    pub fn reject(&mut self, id: &CallId, reason: Option<RejectReason>) -> AppRequest {
        AppRequest::Reject(CallRejectRequest {
            kind: tags::Reject,
            message_id: self.message_id(),
            timestamp: self.now,
            call_id: id.clone(),
            reason,
            ext: None,
        })
    }

    pub fn end(&mut self, id: &CallId) -> AppRequest {
        AppRequest::End(CallEndRequest {
            kind: tags::End,
            message_id: self.message_id(),
            timestamp: self.now,
            call_id: id.clone(),
            ext: None,
        })
    }

    pub fn signal(&mut self, id: &CallId, t: SignalType) -> AppRequest {
        AppRequest::Signal(CallSignalRequest {
            kind: tags::Signal,
            message_id: self.message_id(),
            timestamp: self.now,
            call_id: id.clone(),
            signal_type: t,
            payload: SignalPayload::new("c2VhbGVk").unwrap(),
            ext: None,
        })
    }

    /// A calls B with `id`, B rings, A hears ringing.
    pub fn ring(&mut self, id: &CallId) {
        let r = self.initiate(Side::A, id);
        assert_eq!(self.app(Side::A, r), Ok(Disposition::Applied));
        self.settle();
    }

    /// A calls B and B answers.
    pub fn connect(&mut self, id: &CallId) {
        self.ring(id);
        let r = self.accept(id);
        assert_eq!(self.app(Side::B, r), Ok(Disposition::Applied));
        self.settle();
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
