//! Loads the schema files and the registry, resolves `$ref`s, builds `jsonschema` validators.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use jsonschema::{Registry, Validator};
use serde_json::{Value, json};

pub const ROOT: &str = "https://schemas.callvault.org/modules/";
/// The calling module's base URL.
pub const BASE: &str = "https://schemas.callvault.org/modules/calling/v1/";

pub struct Schemas {
    /// The module (`calling`, `messaging`).
    pub module: &'static str,
    /// Its base URL.
    pub base: String,
    pub files: BTreeMap<String, Value>,
    /// Other modules' files it refers to, by the relative path it uses (`../../calling/v1/common.json`).
    pub foreign: BTreeMap<String, Value>,
    pub registry_file: Value,
    registry: Registry<'static>,
}

pub fn schema_dir(module: &str) -> PathBuf {
    callvault_testkit::manifest_dir(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../protocol/schemas/modules/{module}/v1"))
}

fn read_dir(module: &str) -> (BTreeMap<String, Value>, Value) {
    let mut files = BTreeMap::new();
    let mut registry_file = Value::Null;
    for entry in std::fs::read_dir(schema_dir(module)).expect("schema dir") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        if name == "_registry.json" {
            registry_file = value;
        } else {
            files.insert(name, value);
        }
    }
    (files, registry_file)
}

/// The modules with schemas.
pub const MODULES: &[&str] = &["calling", "messaging", "profile"];

impl Schemas {
    /// The calling module.
    pub fn load() -> Self {
        Self::load_module("calling")
    }

    /// One module, with the other modules' files registered for its cross-module `$ref`s.
    pub fn load_module(module: &'static str) -> Self {
        let (files, registry_file) = read_dir(module);
        let base = format!("{ROOT}{module}/v1/");
        let mut builder = Registry::new();
        for (name, value) in &files {
            builder = builder.add(format!("{base}{name}"), value.clone()).expect("add resource");
        }
        let mut foreign = BTreeMap::new();
        for other in MODULES.iter().filter(|m| **m != module) {
            for (name, value) in read_dir(other).0 {
                builder = builder.add(format!("{ROOT}{other}/v1/{name}"), value.clone()).expect("add resource");
                foreign.insert(format!("../../{other}/v1/{name}"), value);
            }
        }
        let registry = builder.prepare().expect("schemas form a valid registry");
        Self { module, base, files, foreign, registry_file, registry }
    }

    /// A validator for `uri` (a file name, optionally with `#pointer`).
    pub fn validator(&self, uri: &str) -> Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_registry(&self.registry)
            .build(&json!({ "$ref": format!("{}{uri}", self.base) }))
            .unwrap_or_else(|e| panic!("validator for {uri}: {e}"))
    }

    /// Follows `$ref`s from `node` (found in `file`); returns the target, its file and a name for
    /// it (the `$defs` key or the file stem).
    pub fn resolve<'a>(&'a self, file: &str, node: &'a Value) -> (String, &'a Value, Option<String>) {
        let mut file = file.to_owned();
        let mut node = node;
        let mut name = None;
        while let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let (target_file, pointer) = r.split_once('#').unwrap_or((r, ""));
            if !target_file.is_empty() {
                file = target_file.to_owned();
            }
            let doc = self
                .files
                .get(&file)
                .or_else(|| self.foreign.get(&file))
                .unwrap_or_else(|| panic!("$ref to unknown file {file}"));
            node = doc.pointer(pointer).unwrap_or_else(|| panic!("$ref {r} points nowhere"));
            name = Some(
                pointer
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| file.trim_end_matches(".json").to_owned()),
            );
        }
        (file, node, name)
    }

    /// Registry entries as (id, file, rust_type, subjects).
    pub fn entries(&self) -> Vec<(String, String, Option<String>, Vec<String>)> {
        self.registry_file["schemas"]
            .as_array()
            .expect("registry has schemas")
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    e["file"].as_str().unwrap().to_owned(),
                    e["rust_type"].as_str().map(str::to_owned),
                    e["subjects"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect(),
                )
            })
            .collect()
    }
}

pub const GUID: &str = "0123456789abcdef0123456789abcdef01234567";
pub const UUID: &str = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";
pub const TIMESTAMP: &str = "2026-11-22T10:00:00Z";
pub const PUBLIC_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

/// A valid value for a named string definition or property.
pub fn valid_string(name: &str) -> String {
    match name {
        "guid" | "peer_guid" | "from_guid" | "conversation" => GUID.to_owned(),
        "uuid" => UUID.to_owned(),
        "timestamp" => TIMESTAMP.to_owned(),
        "public_key" => PUBLIC_KEY.to_owned(),
        "signal_payload" => "c2VhbGVkLXBheWxvYWQ=".to_owned(),
        "display_name" => "Ada Lovelace".to_owned(),
        "avatar_url" => "https://example.org/ada.png".to_owned(),
        "message" | "error_text" => "no call with that id".to_owned(),
        "sealed_body" => "c2VhbGVkLWJvZHk=".to_owned(),
        "item_key" => "1764000000000-o-42".to_owned(),
        "invite_token" | "token" | "mine" => "cvinv1_eyJpZCI6IjAwIn0".to_owned(),
        "invite_nonce" | "nonce" => "0707070707070707070707070707070a".to_owned(),
        "key_hex" | "user_key" | "vault_key" => "ab".repeat(32),
        "delegation" => "{\"kind\":0}".to_owned(),
        "reach" => "local".to_owned(),
        other => panic!("no valid example string for {other}: add one"),
    }
}
