//! Vaults filled with calls, and what one call's events cost in them (the kernel's tests and
//! benchmarks of an event's cost against the vault's size).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::Ordering;

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_call::abi::{self, HandlerName, Outcome, OutputItem};
use callvault_crypto::{Delegation, SecretIdentity};
use callvault_kernel::{EntityKey, Event, Input, WireMessage};
use callvault_protocol::Timestamp;
use callvault_protocol::fields::DisplayName;
use callvault_protocol::subject::RequestKind;
use callvault_store::Kv;
use callvault_vault::connections::{self, Connection};
use serde_json::json;

use super::{User, id, initiate, simple};

/// Input bytes and fuel of the vault's last handler run.
pub fn cost<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> (u64, u64) {
    let s = u.vault.stats();
    (s.last_input_bytes.load(Ordering::Relaxed), s.last_fuel.load(Ordering::Relaxed))
}

/// A connection of `u` whose vault does not answer (so nothing else runs in `u`'s vault).
pub async fn silent_peer<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> Connection {
    let identity = SecretIdentity::generate();
    let vault_key = SecretIdentity::generate();
    let d = Delegation::sign(&identity, &vault_key.public(), 1_790_000_000).unwrap();
    let c = Connection::from_delegation(&d, DisplayName::new("Peer").unwrap(), "local").unwrap();
    connections::put(&u.vault.buckets().connections, &c).await.unwrap();
    c
}

/// An initiate (a wide handler: the active call, the calls with the peer, the live count) and an
/// end (a narrow one) of a fresh call from `u` to `peer`: their costs.
pub async fn costs_of_a_call<B: Bus + Clone, K: Kv + Clone>(
    u: &User<B, K>,
    peer: &Connection,
    n: u32,
) -> [(u64, u64); 2] {
    let call = id(n);
    let o = u.vault.handle_request(RequestKind::Initiate, initiate(&call, &peer.guid, n).to_string().as_bytes()).await;
    assert_eq!(o.unwrap(), Outcome::Applied);
    let initiate = cost(u);
    let o = u.vault.handle_request(RequestKind::End, simple("end", &call, n + 1).to_string().as_bytes()).await;
    assert_eq!(o.unwrap(), Outcome::Applied);
    [initiate, cost(u)]
}

/// A settled call of `local` with `peer` as the call family stores it (initiated, then declined),
/// made by the family's own code.
pub fn settled_call(local: &callvault_protocol::Guid, peer: &Connection, call: &str) -> (String, String) {
    let t = Timestamp::from_unix_millis(1_790_000_000_000);
    let info = peer.info();
    let input = |handler: HandlerName, event: Event, states| Input {
        handler: handler.as_str().into(),
        local: local.clone(),
        now: t,
        config: abi::config_json(60),
        event,
        entity: EntityKey::parse(call).unwrap(),
        states,
        counts: Default::default(),
        connection: Some(info.clone()),
        page: None,
        connections: Vec::new(),
        tokens: Default::default(),
        record: None,
    };
    let req = json!({"type": "call.initiate", "message_id": id(1), "call_id": call, "timestamp": t.to_string(), "peer_guid": peer.guid.to_string(), "call_type": "audio"});
    let out = abi::run(&input(HandlerName::Initiate, Event::App(WireMessage::from_value("initiate", &req)), vec![]));
    let state = |out: &abi::Output| {
        out.outputs
            .iter()
            .find_map(|o| match o {
                OutputItem::Store { state, records, .. } => Some((
                    state.get().to_owned(),
                    records[0].value.as_ref().map(|v| v.get().to_owned()).unwrap_or_default(),
                )),
                _ => None,
            })
            .unwrap()
    };
    let (s1, _) = state(&out);
    let reject = json!({"type": "call.reject", "message_id": id(2), "call_id": call, "timestamp": t.to_string(), "from_guid": peer.guid.to_string(), "reason": "declined"});
    let states = vec![callvault_kernel::EntityState {
        key: EntityKey::parse(call).unwrap(),
        version: abi::STATE_VERSION,
        state: callvault_kernel::Json(serde_json::value::RawValue::from_string(s1).unwrap()),
    }];
    let out = abi::run(&input(HandlerName::Reject, Event::Peer(WireMessage::from_value("reject", &reject)), states));
    let (state, record) = state(&out);
    assert!(record.contains("\"rejected\""), "{record}");
    (state, record)
}

/// Fills `u`'s vault with `stored` settled calls with `peer` (written as the kernel stores them)
/// and `unsettled` calls ringing out to as many other connections (placed through the vault).
pub async fn fill_with_calls<B: Bus + Clone, K: Kv + Clone>(
    u: &User<B, K>,
    peer: &Connection,
    stored: u32,
    unsettled: u32,
) {
    let (template, record) = settled_call(&u.guid, peer, &id(0));
    let writes = (1..=stored).map(|n| {
        let call = id(1_000_000 + n);
        let state = template.replace(&id(0), &call);
        let envelope = format!(r#"{{"v":1,"peer":"{}","state":{state}}}"#, peer.guid);
        let record = record.replace(&id(0), &call);
        let b = u.vault.buckets();
        async move {
            b.state.put(&format!("call.{call}"), Bytes::from(envelope)).await.unwrap();
            b.calls.put(&call, Bytes::from(record)).await.unwrap();
        }
    });
    let mut writes: Vec<_> = writes.map(Box::pin).collect();
    while !writes.is_empty() {
        let rest = writes.split_off(writes.len().min(256));
        futures_util::future::join_all(std::mem::replace(&mut writes, rest)).await;
    }
    assert_eq!(u.vault.buckets().calls.keys().await.unwrap().len(), stored as usize);
    for n in 0..unsettled {
        let c = silent_peer(u).await;
        let call = id(2_000_000 + n);
        let req = initiate(&call, &c.guid, 2_000_000 + n).to_string();
        let o = u.vault.handle_request(RequestKind::Initiate, req.as_bytes());
        assert_eq!(o.await.unwrap(), Outcome::Applied, "call {n} was refused: no cap may be hit");
    }
}
