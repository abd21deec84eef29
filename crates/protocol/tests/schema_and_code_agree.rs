//! The JSON Schemas are the source of truth. This test holds the Rust types to them:
//! the registry and the Rust type list name the same schemas, every type's fields are exactly its
//! schema's properties, and for every constraint in every schema a document violating it is
//! refused by both the `jsonschema` validator and the Rust parser (and valid ones accepted by both).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;

use callvault_protocol::family::{FamilySubject, Space};
use callvault_protocol::registry::{ENTRIES, Entry, MESSAGING_ENTRIES, PROFILE_ENTRIES, component_names};
use callvault_protocol::subject::Subject;
use serde_json::{Map, Value, json};
use support::*;

struct Case {
    name: String,
    doc: Value,
    valid: bool,
}

fn entries_of(module: &str) -> &'static [Entry] {
    match module {
        "calling" => ENTRIES,
        "messaging" => MESSAGING_ENTRIES,
        "profile" => PROFILE_ENTRIES,
        other => panic!("no Rust registry for {other}"),
    }
}

fn entry(id: &str) -> &'static Entry {
    ENTRIES
        .iter()
        .chain(MESSAGING_ENTRIES)
        .chain(PROFILE_ENTRIES)
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no Rust type for {id}"))
}

/// Every module's schemas.
fn modules() -> impl Iterator<Item = Schemas> {
    MODULES.iter().map(|m| Schemas::load_module(m))
}

#[test]
fn registry_lists_every_schema_file_and_every_rust_type() {
    for s in modules() {
        registry_lists_files_and_types(&s);
    }
}

fn registry_lists_files_and_types(s: &Schemas) {
    let listed: BTreeSet<String> = s.entries().iter().map(|e| e.1.clone()).collect();
    let on_disk: BTreeSet<String> = s.files.keys().cloned().collect();
    assert_eq!(listed, on_disk, "registry and schema directory differ");

    let from_registry: BTreeSet<(String, String)> =
        s.entries().into_iter().filter_map(|(id, _, rust, _)| rust.map(|r| (id, r))).collect();
    let from_rust: BTreeSet<(String, String)> =
        entries_of(s.module).iter().map(|e| (e.id.to_owned(), e.rust_type.to_owned())).collect();
    assert_eq!(from_registry, from_rust, "registry rust_type pairs and registry::ENTRIES differ");

    for (id, file, _, _) in s.entries() {
        let schema = &s.files[&file];
        assert_eq!(schema["$id"], json!(format!("{}{file}", s.base)), "{file}: $id");
        assert_eq!(schema["$schema"], json!("https://json-schema.org/draft/2020-12/schema"), "{file}");
        assert_eq!(id, format!("{}/v1/{}", s.module, file.trim_end_matches(".json")), "{file}: id");
    }
}

#[test]
fn every_message_travels_on_the_subject_of_its_type() {
    for s in modules() {
        messages_travel_on_their_subjects(&s);
    }
}

fn messages_travel_on_their_subjects(s: &Schemas) {
    for (id, file, rust, subjects) in s.entries() {
        let Some(tag) = s.files[&file].pointer("/properties/type/const").and_then(Value::as_str) else {
            assert!(subjects.is_empty(), "{id} has subjects but no type");
            continue;
        };
        assert!(!subjects.is_empty(), "{id} ({rust:?}) lists no subject");
        let (family, kind) = tag.split_once('.').unwrap();
        let direction = &file[..file.find(&format!(".{family}.")).unwrap()];
        let expected_space = match direction {
            "for-vault" => Space::ForVault,
            "for-app" => Space::ForApp,
            "message-space" => Space::MessageSpace,
            other => panic!("unexpected file prefix {other}"),
        };
        for pattern in subjects {
            let concrete = pattern.replace("{guid}", GUID);
            let subject = FamilySubject::parse(&concrete).unwrap_or_else(|e| panic!("{id}: {pattern}: {e}"));
            assert_eq!(subject.space, expected_space, "{id}: {pattern}");
            assert_eq!((subject.family.as_str(), subject.kind.as_str()), (family, kind), "{id}: {pattern}");
            if s.module == "calling" && family == "call" {
                // The call subjects' own parser carries the same type.
                let carried = match Subject::parse(&concrete).unwrap_or_else(|e| panic!("{id}: {pattern}: {e}")) {
                    Subject::ForVault { kind, .. } => kind.message_type(),
                    Subject::ForApp { kind, .. } => kind.message_type(),
                    Subject::MessageSpace { kind, .. } => kind.message_type(),
                };
                assert_eq!(carried, tag, "{id}: subject {pattern} carries {carried}");
            }
        }
    }
}

#[test]
fn rust_fields_are_exactly_the_schema_properties() {
    for s in modules() {
        fields_are_properties(&s);
    }
}

fn fields_are_properties(s: &Schemas) {
    for (id, file, rust, _) in s.entries() {
        let Some(_) = rust else { continue };
        let schema = &s.files[&file];
        let rust_names: BTreeSet<&str> = (entry(&id).names)().into_iter().collect();
        let schema_names: BTreeSet<&str> = match schema.get("properties") {
            Some(p) => p.as_object().unwrap().keys().map(String::as_str).collect(),
            None => schema["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect(),
        };
        assert_eq!(rust_names, schema_names, "{id}: Rust and schema names differ");
    }
    let common = &s.files["common.json"]["$defs"];
    for (name, def) in common.as_object().unwrap() {
        if let Some(props) = def.get("properties") {
            let rust: BTreeSet<&str> = component_names(name)
                .unwrap_or_else(|| panic!("$defs/{name} has no Rust type in component_names"))
                .into_iter()
                .collect();
            let schema: BTreeSet<&str> = props.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(rust, schema, "$defs/{name}");
        }
    }
}

/// A valid instance of `node`: with every optional property when `full`, else only required ones.
fn example(s: &Schemas, file: &str, node: &Value, prop: &str, full: bool) -> Value {
    let (file, node, name) = s.resolve(file, node);
    if let Some(c) = node.get("const") {
        return c.clone();
    }
    if let Some(e) = node.get("enum") {
        return e[0].clone();
    }
    if let Some(alternatives) = node.get("oneOf") {
        return example(s, &file, &alternatives[0], prop, full);
    }
    if let Some(items) = node.get("prefixItems") {
        return Value::Array(items.as_array().unwrap().iter().map(|n| example(s, &file, n, prop, full)).collect());
    }
    match node["type"].as_str() {
        Some("string") => json!(valid_string(name.as_deref().unwrap_or(prop))),
        Some("integer") => json!(42),
        Some("boolean") => json!(true),
        Some("array") => json!([example(s, &file, &node["items"], prop, full)]),
        Some("object") if node.get("x-extension-point").is_some() => json!({"future_field": {"any": [1, "x"]}}),
        Some("object") => {
            let required: BTreeSet<&str> =
                node["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let mut out = Map::new();
            for (k, v) in node["properties"].as_object().unwrap() {
                if full || required.contains(k.as_str()) {
                    out.insert(k.clone(), example(s, &file, v, k, full));
                }
            }
            Value::Object(out)
        }
        other => panic!("{file}: no example for type {other:?}"),
    }
}

fn set(doc: &Value, path: &[String], value: Option<Value>) -> Value {
    let mut doc = doc.clone();
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = &mut doc;
    for p in parents {
        cur = cur.get_mut(p).expect("path exists");
    }
    let obj = cur.as_object_mut().expect("object");
    match value {
        Some(v) => obj.insert(last.clone(), v),
        None => obj.remove(last),
    };
    doc
}

/// Invalid and boundary values for a named string definition: (value, valid?).
fn string_cases(name: &str) -> Vec<(Value, bool)> {
    let s = |x: &str| json!(x);
    match name {
        "guid" => vec![
            (s(&GUID.to_uppercase()), false),
            (s(&GUID[..39]), false),
            (s(&format!("{GUID}0")), false),
            (s(&format!("{}.", &GUID[..39])), false),
            (s(&format!("{}*", &GUID[..39])), false),
            (s(&format!("{}>", &GUID[..39])), false),
            (s(&format!("{} ", &GUID[..39])), false),
            (s(""), false),
            (s(&"f".repeat(40)), true),
        ],
        "uuid" => vec![
            (s(&UUID.to_uppercase()), false),
            (s(&UUID.replace('-', "")), false),
            (s(&UUID[..35]), false),
            (s("6f9619ff-8b86-4d01-b42d-00cf4fc964fg"), false),
            (s("00000000-0000-0000-0000-000000000000"), true),
        ],
        "timestamp" => vec![
            (s("2026-11-22 10:00:00Z"), false),
            (s("2026-11-22T10:00:00"), false),
            (s("2026-13-22T10:00:00Z"), false),
            (s("2026-11-22T25:00:00Z"), false),
            (s("not a date"), false),
            (s("2026-11-22T10:00:00.123456789+05:30"), true),
            (s("2026-11-22T10:00:00-08:00"), true),
        ],
        "public_key" => vec![
            (s("AAA"), false),
            (s("AA=A"), false),
            (s("AAAA===="), false),
            (s("AA-_"), false),
            (s(&"A".repeat(260)), false),
            (s(&"A".repeat(256)), true),
            (s("AAAA"), true),
            (s("AA=="), true),
        ],
        "signal_payload" => vec![
            (s(""), false),
            (s("a b"), false),
            (s("{\"sdp\":1}"), false),
            (s(&"A".repeat(65_537)), false),
            (s(&"A".repeat(65_536)), true),
            (s("a-_=+/"), true),
        ],
        "display_name" => vec![
            (s(""), false),
            (s("Ada\u{7}"), false),
            (s("Ada\u{7f}"), false),
            // C1 controls: NEL and CSI (a terminal's escape introducer).
            (s("Ada\u{85}"), false),
            (s("Ada\u{9b}31m"), false),
            // Bidi overrides and isolates, zero-width and other format characters.
            (s("\u{202e}adA"), false),
            (s("Ad\u{2066}a"), false),
            (s("A\u{200b}da"), false),
            (s("A\u{200e}da"), false),
            (s("Ada\u{2060}"), false),
            (s("\u{feff}Ada"), false),
            (s("Ada\u{ad}"), false),
            (s("Ada\u{e0001}"), false),
            (s("Ada\u{1d173}"), false),
            (s("Ada\u{2028}"), false),
            // Blank: only spaces of any kind.
            (s(" "), false),
            (s("   "), false),
            (s("\u{a0}\u{3000}\u{2003}"), false),
            (s(" Ada "), true),
            (s("Zoë Ünal-Ødegård"), true),
            (s("علي"), true),
            (s("李小龍"), true),
            (s("\u{1f600}\u{1f680}"), true),
            // Joiners and tags that names and emoji need stay.
            (s("\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}"), true),
            (s("\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}"), true),
            (s("\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}"), true),
            (s(&"a".repeat(101)), false),
            (s(&"a".repeat(100)), true),
            (s(&"é".repeat(100)), true),
            (s("Ada 🦀"), true),
        ],
        "avatar_url" => vec![
            (s("http://example.org/a.png"), false),
            (s("https://exa mple.org/a.png"), false),
            (s("https://"), false),
            (s(&format!("https://{}", "a".repeat(2041))), false),
            (s(&format!("https://{}", "a".repeat(2040))), true),
        ],
        "message" | "error_text" => vec![(s(""), false), (s(&"m".repeat(513)), false), (s(&"m".repeat(512)), true)],
        "sealed_body" => vec![
            (s(""), false),
            (s("AAA"), false),
            (s("AA=A"), false),
            (s("AA-_"), false),
            (s("a b="), false),
            (s(&"A".repeat(32_864)), false),
            (s(&"A".repeat(32_860)), true),
            (s("AAAA"), true),
            (s("AA=="), true),
        ],
        "item_key" => vec![
            (s(""), false),
            (s("1764000000000-o-0"), false),
            (s("1764000000000-o-01"), false),
            (s("1764000000000-x-1"), false),
            (s("176400000000-o-1"), false),
            (s("17640000000000-o-1"), false),
            (s("1764000000000-O-1"), false),
            (s("1764000000000-o-1-2"), false),
            (s("1764000000000.o.1"), false),
            (s(&format!("1764000000000-i-{}", "9".repeat(17))), false),
            (s(&format!("1764000000000-i-{}", "9".repeat(16))), true),
            (s("0000000000000-i-1"), true),
            (s("1764000000000-o-1"), true),
        ],
        "invite_token" | "token" | "mine" => vec![
            (s(""), false),
            (s("cvinv1_"), false),
            (s("cvinv2_abcd"), false),
            (s("cvinv1_ab+d"), false),
            (s("cvinv1_ab d"), false),
            (s(&format!("cvinv1_{}", "A".repeat(16_378))), false),
            (s(&format!("cvinv1_{}", "A".repeat(16_377))), true),
            (s("cvinv1_a"), true),
            (s("cvinv1_aZ09-_"), true),
        ],
        "invite_nonce" | "nonce" => vec![
            (s(""), false),
            (s(&"a".repeat(31)), false),
            (s(&"a".repeat(33)), false),
            (s(&"g".repeat(32)), false),
            (s(&"aF".repeat(16)), true),
        ],
        "key_hex" | "user_key" | "vault_key" => vec![
            (s(&"a".repeat(63)), false),
            (s(&"a".repeat(65)), false),
            (s(&"A".repeat(64)), false),
            (s(&"g".repeat(64)), false),
            (s(&"0f".repeat(32)), true),
        ],
        "delegation" => vec![(s("{"), false), (s(&"d".repeat(8193)), false), (s(&"d".repeat(8192)), true)],
        "reach" => vec![(s(""), false), (s(&"r".repeat(513)), false), (s("nats://10.0.0.1:4222"), true)],
        other => panic!("no string cases for {other}: add them"),
    }
}

/// Every mutation of `doc` at object `path` whose schema is `node`.
fn object_cases(s: &Schemas, file: &str, node: &Value, doc: &Value, path: &[String], out: &mut Vec<Case>) {
    let required: BTreeSet<&str> = node["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let here = if path.is_empty() { "$".to_owned() } else { path.join(".") };
    let unknown: Vec<String> = path.iter().cloned().chain(["zz_unknown".to_owned()]).collect();
    out.push(Case { name: format!("{here}: unknown property"), doc: set(doc, &unknown, Some(json!(1))), valid: false });

    for (key, sub) in node["properties"].as_object().unwrap() {
        let at: Vec<String> = path.iter().cloned().chain([key.clone()]).collect();
        let label = at.join(".");
        let is_required = required.contains(key.as_str());
        // Removing one of a dependentRequired pair from the full example leaves the other alone.
        let in_pair = node.get("dependentRequired").is_some_and(|d| d.to_string().contains(&format!("\"{key}\"")));
        out.push(Case { name: format!("{label}: removed"), doc: set(doc, &at, None), valid: !is_required && !in_pair });
        out.push(Case { name: format!("{label}: null"), doc: set(doc, &at, Some(Value::Null)), valid: false });

        let (sub_file, target, name) = s.resolve(file, sub);
        let name = name.unwrap_or_else(|| key.clone());
        let wrong_type = if target["type"] == json!("string") { json!(12345) } else { json!("wrong") };
        out.push(Case { name: format!("{label}: wrong type"), doc: set(doc, &at, Some(wrong_type)), valid: false });
        if let Some(obj) = doc.pointer(&format!("/{}", at.join("/"))).and_then(Value::as_object) {
            // serde's derive would read an object's values given as an array, in field order.
            let as_array = Value::Array(obj.values().cloned().collect());
            out.push(Case {
                name: format!("{label}: fields as an array"),
                doc: set(doc, &at, Some(as_array)),
                valid: false,
            });
        }

        if let Some(c) = target.get("const") {
            out.push(Case {
                name: format!("{label}: other const"),
                doc: set(doc, &at, Some(json!("call.bogus"))),
                valid: false,
            });
            out.push(Case { name: format!("{label}: the const"), doc: set(doc, &at, Some(c.clone())), valid: true });
            continue;
        }
        if let Some(values) = target.get("enum").and_then(Value::as_array) {
            for v in values {
                out.push(Case { name: format!("{label}: {v}"), doc: set(doc, &at, Some(v.clone())), valid: true });
                let upper = json!(v.as_str().unwrap().to_uppercase());
                out.push(Case { name: format!("{label}: {upper}"), doc: set(doc, &at, Some(upper)), valid: false });
            }
            out.push(Case { name: format!("{label}: bogus"), doc: set(doc, &at, Some(json!("bogus"))), valid: false });
            continue;
        }
        match target["type"].as_str() {
            Some("string") => {
                for (v, valid) in string_cases(&name) {
                    out.push(Case {
                        name: format!("{label}: {:.40}", v.to_string()),
                        doc: set(doc, &at, Some(v)),
                        valid,
                    });
                }
            }
            Some("integer") => {
                let max = target["maximum"].as_u64().unwrap();
                let min = target["minimum"].as_u64().unwrap();
                let below = if min == 0 { json!(-1) } else { json!(min - 1) };
                for (v, valid) in [
                    (json!(min), true),
                    (json!(max), true),
                    (json!(5.0), true),
                    (below, false),
                    (json!(max + 1), false),
                    (json!(1.5), false),
                    (json!("5"), false),
                ] {
                    out.push(Case { name: format!("{label}: {v}"), doc: set(doc, &at, Some(v)), valid });
                }
            }
            Some("boolean") => {
                out.push(Case { name: format!("{label}: false"), doc: set(doc, &at, Some(json!(false))), valid: true });
                out.push(Case {
                    name: format!("{label}: \"true\""),
                    doc: set(doc, &at, Some(json!("true"))),
                    valid: false,
                });
            }
            Some("object") if target.get("x-extension-point").is_some() => {
                let max = target["maxProperties"].as_u64().unwrap();
                let props = |n: u64| Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect());
                out.push(Case {
                    name: format!("{label}: {max} properties"),
                    doc: set(doc, &at, Some(props(max))),
                    valid: true,
                });
                out.push(Case {
                    name: format!("{label}: {} properties", max + 1),
                    doc: set(doc, &at, Some(props(max + 1))),
                    valid: false,
                });
                out.push(Case { name: format!("{label}: empty"), doc: set(doc, &at, Some(json!({}))), valid: true });
            }
            Some("object") => object_cases(s, &sub_file, target, doc, &at, out),
            Some("array") => {
                let max = target["maxItems"].as_u64().unwrap();
                let one = doc.pointer(&format!("/{}", at.join("/"))).and_then(|v| v.get(0)).cloned().unwrap();
                let many = |n: u64| Value::Array((0..n).map(|_| one.clone()).collect());
                out.push(Case { name: format!("{label}: empty"), doc: set(doc, &at, Some(json!([]))), valid: true });
                out.push(Case {
                    name: format!("{label}: {max} items"),
                    doc: set(doc, &at, Some(many(max))),
                    valid: true,
                });
                out.push(Case {
                    name: format!("{label}: {} items", max + 1),
                    doc: set(doc, &at, Some(many(max + 1))),
                    valid: false,
                });
                out.push(Case {
                    name: format!("{label}: an item of the wrong type"),
                    doc: set(doc, &at, Some(json!([{"zz": 1}]))),
                    valid: false,
                });
            }
            other => panic!("{label}: no cases for type {other:?}"),
        }
    }

    if let Some(deps) = node.get("dependentRequired").and_then(Value::as_object) {
        for (key, needs) in deps {
            for need in needs.as_array().unwrap() {
                let at: Vec<String> = path.iter().cloned().chain([need.as_str().unwrap().to_owned()]).collect();
                out.push(Case { name: format!("{key} without {need}"), doc: set(doc, &at, None), valid: false });
            }
        }
    }
}

#[test]
fn schema_and_parser_accept_and_refuse_the_same_documents() {
    for s in modules() {
        let least = match s.module {
            "calling" => 1400,
            "messaging" => 900,
            _ => 300,
        };
        accept_and_refuse_the_same(&s, least);
    }
}

fn accept_and_refuse_the_same(s: &Schemas, least: usize) {
    let mut disagreements = Vec::new();
    let mut checked = 0usize;
    for (id, file, rust, _) in s.entries() {
        if rust.is_none() {
            continue;
        }
        let e = entry(&id);
        let validator = s.validator(&file);
        let schema = &s.files[&file];
        let mut cases = vec![
            Case { name: "not an object (array)".into(), doc: json!([]), valid: false },
            Case { name: "not an object (number)".into(), doc: json!(7), valid: false },
            Case { name: "null".into(), doc: Value::Null, valid: false },
        ];
        if schema.get("properties").is_some() {
            let full = example(s, &file, schema, "", true);
            let minimal = example(s, &file, schema, "", false);
            cases.push(Case { name: "full example".into(), doc: full.clone(), valid: true });
            let in_order: Vec<Value> =
                (e.names)().iter().map(|n| full.get(*n).cloned().unwrap_or(Value::Null)).collect();
            cases.push(Case {
                name: "fields as an array in Rust field order".into(),
                doc: Value::Array(in_order),
                valid: false,
            });
            cases.push(Case { name: "minimal example".into(), doc: minimal, valid: true });
            object_cases(s, &file, schema, &full, &[], &mut cases);
        } else {
            for v in schema["enum"].as_array().unwrap() {
                cases.push(Case { name: format!("{v}"), doc: v.clone(), valid: true });
            }
            cases.push(Case { name: "bogus".into(), doc: json!("bogus"), valid: false });
            cases.push(Case { name: "ACTIVE".into(), doc: json!("ACTIVE"), valid: false });
        }
        for case in cases {
            checked += 1;
            let bytes = serde_json::to_vec(&case.doc).unwrap();
            let by_schema = validator.is_valid(&case.doc);
            let by_rust = (e.reparse)(&bytes);
            if by_schema != case.valid || by_rust.is_ok() != case.valid {
                disagreements.push(format!(
                    "{id} / {}: expected {}, schema says {by_schema}, Rust says {:?}",
                    case.name,
                    if case.valid { "valid" } else { "invalid" },
                    by_rust.err()
                ));
            }
        }
    }
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
    assert!(checked > least, "{}: only {checked} cases: the generator lost coverage", s.module);
}

#[test]
fn examples_round_trip_json_rust_json_and_rust_json_rust() {
    for s in modules() {
        examples_round_trip(&s);
    }
}

fn examples_round_trip(s: &Schemas) {
    for (id, file, rust, _) in s.entries() {
        if rust.is_none() || s.files[&file].get("properties").is_none() {
            continue;
        }
        let e = entry(&id);
        for full in [true, false] {
            let doc = example(s, &file, &s.files[&file], "", full);
            let once = (e.reparse)(&serde_json::to_vec(&doc).unwrap()).unwrap_or_else(|err| panic!("{id}: {err}"));
            assert_eq!(once, doc, "{id}: JSON -> Rust -> JSON changed the document");
            let twice = (e.reparse)(&serde_json::to_vec(&once).unwrap()).unwrap();
            assert_eq!(twice, once, "{id}: Rust -> JSON -> Rust is not stable");
        }
    }
}

#[test]
fn parse_errors_name_the_field_the_schema_names() {
    // The schema validator and the Rust parser must also agree on *where* a document is wrong.
    for s in modules() {
        errors_name_the_field(&s);
    }
}

fn errors_name_the_field(s: &Schemas) {
    for (id, file, rust, _) in s.entries() {
        if rust.is_none() || s.files[&file].get("properties").is_none() {
            continue;
        }
        let e = entry(&id);
        let full = example(s, &file, &s.files[&file], "", true);
        for key in full.as_object().unwrap().keys() {
            let wrong = if full[key].is_array() { json!("wrong") } else { json!(["wrong"]) };
            let doc = set(&full, std::slice::from_ref(key), Some(wrong));
            let err = (e.reparse)(&serde_json::to_vec(&doc).unwrap()).expect_err("refused");
            assert_eq!(err.field_path(), Some(key.as_str()), "{id}: {err}");
            let v = s.validator(&file);
            let schema_paths: Vec<String> = v.iter_errors(&doc).map(|e| e.instance_path().to_string()).collect();
            assert!(schema_paths.contains(&format!("/{key}")), "{id}: schema blames {schema_paths:?}");
        }
    }
}
