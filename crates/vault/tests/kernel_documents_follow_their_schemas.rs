//! Protocol-first for the kernel (issue 13, point 1): its own documents have JSON Schemas
//! (`protocol/schemas/kernel/v1/`, with a registry). Every manifest a family module carries (the
//! built-in `call`, both versions of `probe`) follows the manifest schema, and the schema and
//! `Manifest::parse` agree on documents that break it; what a vault stores (envelopes, index
//! entries, outbox entries) and the acknowledgement it sends follow theirs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod vaults;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use callvault_bus::Bus;
use callvault_crypto::{SecretIdentity, giftwrap};
use callvault_kernel::Manifest;
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use callvault_vault::runtime::{HandlerLimits, HandlerRuntime, builtin_manifests};
use serde_json::{Value, json};
use vaults::*;

const PROBE_V1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_family_v1.wasm"));
const PROBE_V2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_family_v2.wasm"));

fn dir() -> PathBuf {
    callvault_testkit::manifest_dir(env!("CARGO_MANIFEST_DIR")).join("../../protocol/schemas/kernel/v1")
}

fn schema(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(dir().join(file)).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&serde_json::from_str(&text).unwrap())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_registry_lists_every_kernel_schema() {
    let registry: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("_registry.json")).unwrap()).unwrap();
    let listed: BTreeSet<String> =
        registry["schemas"].as_array().unwrap().iter().map(|e| e["file"].as_str().unwrap().to_owned()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "_registry.json")
        .collect();
    assert_eq!(listed, on_disk);
    for file in &listed {
        schema(file);
    }
}

#[test]
fn every_manifest_follows_the_schema_and_both_refuse_the_same_mutations() {
    let v = schema("manifest.json");
    let rt = HandlerRuntime::new(HandlerLimits::default());
    let mut manifests: Vec<Manifest> = builtin_manifests().iter().map(|(m, _)| m.clone()).collect();
    manifests.push(rt.manifest_of(PROBE_V1).unwrap());
    manifests.push(rt.manifest_of(PROBE_V2).unwrap());
    assert_eq!(manifests.len(), 6, "call, message, profile, connection, probe v1 and v2");
    for m in &manifests {
        let doc = serde_json::to_value(m).unwrap();
        assert!(v.is_valid(&doc), "{}: {:?}", m.family, v.iter_errors(&doc).map(|e| e.to_string()).collect::<Vec<_>>());
    }
    let call = serde_json::to_value(&manifests[0]).unwrap();
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut d = call.clone();
        f(&mut d);
        d
    };
    let cases: Vec<(&str, Value, bool)> = vec![
        ("as is", call.clone(), true),
        ("no records", mutate(&|d| drop(d.as_object_mut().unwrap().remove("records"))), true),
        ("no family", mutate(&|d| drop(d.as_object_mut().unwrap().remove("family"))), false),
        ("an unknown field", mutate(&|d| d["extra"] = json!(1)), false),
        ("a reserved family", mutate(&|d| d["family"] = json!("module")), false),
        ("a family that is no token", mutate(&|d| d["family"] = json!("Call")), false),
        ("state version 0", mutate(&|d| d["state_version"] = json!(0)), false),
        ("sends ack", mutate(&|d| d["sends"].as_array_mut().unwrap().push(json!("ack"))), false),
        ("takes ack", mutate(&|d| d["handlers"][0]["app"] = json!(["ack"])), false),
        ("too many live entities", mutate(&|d| d["max_live"] = json!(10_001)), false),
        ("a handler's unknown field", mutate(&|d| d["handlers"][0]["extra"] = json!(true)), false),
        ("a context that is no tag", mutate(&|d| d["handlers"][0]["context"] = json!(["Not A Tag"])), false),
        ("an unknown peer policy", mutate(&|d| d["peers"] = json!("anyone")), false),
    ];
    let message = serde_json::to_value(&manifests[1]).unwrap();
    assert_eq!(message["family"], json!("message"));
    let history = message["handlers"].as_array().unwrap().iter().position(|h| h["name"] == "history").unwrap();
    let page = |f: &dyn Fn(&mut Value)| {
        let mut d = message.clone();
        f(&mut d["handlers"][history]["page"]);
        d
    };
    let cases = cases.into_iter().chain([
        ("the message family as is", message.clone(), true),
        ("a page of no records", page(&|p| p["limit"] = json!(0)), false),
        ("a page of 201 records", page(&|p| p["limit"] = json!(201)), false),
        ("a page of 256 KiB", page(&|p| p["max_bytes"] = json!(262_144)), true),
        ("a page past 256 KiB", page(&|p| p["max_bytes"] = json!(262_145)), false),
        ("a page's unknown field", page(&|p| p["extra"] = json!(1)), false),
        ("a page without its bucket", page(&|p| drop(p.as_object_mut().unwrap().remove("bucket"))), false),
    ]);
    let connection = serde_json::to_value(&manifests[3]).unwrap();
    assert_eq!(connection["family"], json!("connection"));
    let accept = connection["handlers"].as_array().unwrap().iter().position(|h| h["name"] == "accept").unwrap();
    let handler = |f: &dyn Fn(&mut Value)| {
        let mut d = connection.clone();
        f(&mut d["handlers"][accept]);
        d
    };
    let cases = cases.chain([
        ("the connection family as is", connection.clone(), true),
        ("an entity template with a stray brace", handler(&|h| h["entity"] = json!("{token.guid")), false),
        (
            "an entity template naming a token's other field",
            handler(&|h| h["entity"] = json!("{token.user_key}")),
            false,
        ),
        ("an entity template of other characters", handler(&|h| h["entity"] = json!("invite.{nonce}")), false),
        ("a plain entity template", handler(&|h| h["entity"] = json!("x-{from_guid}")), true),
        ("five more entities", handler(&|h| h["also"] = json!(["a", "b", "c", "d", "e"])), false),
        ("three tokens", handler(&|h| h["tokens"] = json!([{"field": "a"}, {"field": "b"}, {"field": "c"}])), false),
        ("a token's unknown field", handler(&|h| h["tokens"][0]["extra"] = json!(1)), false),
        ("a token without its field", handler(&|h| h["tokens"][0] = json!({"own": true})), false),
        ("a handler's unknown peer policy", handler(&|h| h["peers"] = json!("anyone")), false),
        (
            "an introduced family",
            {
                let mut d = connection.clone();
                d["peers"] = json!("introduced");
                d
            },
            true,
        ),
    ]);
    for (name, doc, valid) in cases {
        assert_eq!(v.is_valid(&doc), valid, "schema on {name}");
        assert_eq!(Manifest::parse(doc.to_string().as_bytes()).is_ok(), valid, "Manifest::parse on {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_vault_stores_and_acknowledges_follows_the_schemas() {
    let w = embedded();
    let bus = w.bus().await;
    let options = VaultOptions::default();
    let (mut a, mut b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    connect(&a, &b).await;
    let call = id(950);
    answered(&bus, &mut a, &mut b, &call, 950).await;
    // Bob's vault goes down, so Alice's hang-up waits in her outbox.
    let stopped = stop_vault(b).await;
    request(&bus, &a, "end", simple("end", &call, 960)).await;
    status_becomes(&a, &call, "ended").await;

    let (envelope, index, outbox) =
        (schema("entity-envelope.json"), schema("index-entry.json"), schema("outbox-entry.json"));
    let mut seen = BTreeSet::new();
    for key in a.vault.buckets().state.keys().await.unwrap() {
        let value: Value = serde_json::from_slice(&a.vault.buckets().state.get(&key).await.unwrap().unwrap().value)
            .unwrap_or(Value::Null);
        let (kind, v) = match key.split('.').next().unwrap() {
            "kernel" => continue,
            "index" => ("index", &index),
            "outbox" => ("outbox", &outbox),
            _ => ("envelope", &envelope),
        };
        assert!(v.is_valid(&value), "{kind} {value}");
        seen.insert(kind);
    }
    // A settled call has no index entry: a live one (ringing out to Bob's stopped vault) has.
    let live = id(970);
    request(&bus, &a, "initiate", initiate(&live, &stopped.identity.public().guid(), 970)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(e) = a.vault.buckets().state.get(&format!("index.call.{live}")).await.unwrap() {
            let value: Value = serde_json::from_slice(&e.value).unwrap();
            assert!(index.is_valid(&value), "index {value}");
            seen.insert("index");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no index entry for a live call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, BTreeSet::from(["envelope", "index", "outbox"]));

    // Bob's vault is back and acknowledges the hang-up: the acknowledgement follows its schema.
    let a_key = SecretIdentity::parse(&a.vault_key_nsec).unwrap();
    let mut acks = bus.subscribe(&format!("MessageSpace.{}.call.ack", a.guid)).await.unwrap();
    bus.flush().await.unwrap();
    let Stopped { identity, key, delegation } = stopped;
    let _b = start(&w, &bus, options, identity, key, delegation).await;
    let wrap = acks.next_within(WAIT).await.expect("an acknowledgement");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ack: Value = serde_json::from_str(&giftwrap::unwrap(&a_key, &wrap.payload, now).unwrap().content).unwrap();
    assert!(schema("message-space.ack.json").is_valid(&ack), "{ack}");
    assert_eq!(ack["type"], "call.ack");
}
