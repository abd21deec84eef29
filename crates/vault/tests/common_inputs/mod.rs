//! Shared helpers: handler inputs for a two-vault call.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use callvault_call::abi::{self, ConnectionInfo, Event, HandlerInput, WireMessage};
use callvault_kernel::EntityKey;
use callvault_protocol::fields::{DisplayName, PeerProfile};
use callvault_protocol::{Guid, Timestamp};

pub fn guid(n: u8) -> Guid {
    Guid::from_public_key(&[n; 32])
}

pub fn connection(n: u8, name: &str) -> ConnectionInfo {
    ConnectionInfo {
        guid: guid(n),
        profile: PeerProfile { display_name: DisplayName::new(name).unwrap(), avatar_url: None },
        user_key: None,
        revoked: false,
    }
}

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_790_000_000_000 + secs * 1000)
}

pub fn initiate_input(local: u8, peer: u8, connected: bool, now: Timestamp) -> HandlerInput {
    let json = serde_json::json!({
        "type": "call.initiate",
        "message_id": "00000000-0000-4000-8000-000000000001",
        "call_id": "00000000-0000-4000-8000-0000000000aa",
        "timestamp": now.to_string(),
        "peer_guid": guid(peer).to_string(),
        "call_type": "audio"
    });
    HandlerInput {
        handler: "initiate".into(),
        local: guid(local),
        now,
        config: abi::config_json(60),
        event: Event::App(WireMessage::from_value("initiate", &json)),
        entity: EntityKey::parse("00000000-0000-4000-8000-0000000000aa").unwrap(),
        states: Vec::new(),
        counts: Default::default(),
        connection: connected.then(|| connection(peer, "Bob")),
        page: None,
        connections: Vec::new(),
        tokens: Default::default(),
        record: None,
    }
}
