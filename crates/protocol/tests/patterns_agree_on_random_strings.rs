//! For every string definition with a pattern or bounds, random strings (mostly near-valid) are
//! judged by the JSON Schema and by the Rust type; both must give the same verdict.

mod support;

use callvault_protocol::fields::{AvatarUrl, DisplayName, PublicKey, SignalPayload};
use callvault_protocol::{CallId, Guid, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use support::Schemas;

type Check = fn(&str) -> bool;

fn cases() -> Vec<(&'static str, Check, BoxedStrategy<String>)> {
    vec![
        (
            "common.json#/$defs/guid",
            |s| Guid::parse(s).is_ok(),
            prop_oneof!["[0-9a-f]{40}", "[0-9a-fA-F.*> ]{38,42}", ".{0,45}"].boxed(),
        ),
        (
            "common.json#/$defs/uuid",
            |s| CallId::parse(s).is_ok(),
            prop_oneof![
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "[0-9a-fA-F-]{34,38}",
                ".{0,40}"
            ]
            .boxed(),
        ),
        (
            "common.json#/$defs/timestamp",
            |s| Timestamp::parse(s).is_ok(),
            prop_oneof![
                "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])",
                "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?(Z|z|[+-][0-9]{2}:[0-9]{2})?",
                ".{0,40}"
            ]
            .boxed(),
        ),
        (
            "common.json#/$defs/public_key",
            |s| PublicKey::new(s).is_ok(),
            prop_oneof!["([A-Za-z0-9+/]{4}){1,70}(==|=)?", "[A-Za-z0-9+/=_-]{0,20}", ".{0,20}"].boxed(),
        ),
        (
            "common.json#/$defs/signal_payload",
            |s| SignalPayload::new(s).is_ok(),
            prop_oneof!["[A-Za-z0-9+/=_-]{1,200}", "[A-Za-z0-9+/=_ {}\":-]{0,50}", ".{0,30}"].boxed(),
        ),
        (
            "common.json#/$defs/display_name",
            |s| DisplayName::new(s).is_ok(),
            prop_oneof!["\\PC{1,100}", "[a-z\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]{0,10}", ".{95,105}", "\\PC{99,102}"].boxed(),
        ),
        (
            "common.json#/$defs/peer_profile/properties/avatar_url",
            |s| AvatarUrl::new(s).is_ok(),
            prop_oneof![
                "https://[a-z./]{1,40}",
                "https?://[a-z \\t\\u{a0}\\u{2028}\\u{3000}\\u{feff}\\u{85}./]{0,20}",
                ".{0,30}"
            ]
            .boxed(),
        ),
    ]
}

#[test]
fn schema_patterns_and_rust_types_agree_on_random_strings() {
    let schemas = Schemas::load();
    for (uri, rust_accepts, strategy) in cases() {
        let validator = schemas.validator(uri);
        let mut runner = TestRunner::new(Config { cases: 2_000, ..Config::default() });
        let (accepted, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
        runner
            .run(&strategy, |s| {
                let by_schema = validator.is_valid(&json!(s));
                let by_rust = rust_accepts(&s);
                let counter = if by_rust { &accepted } else { &refused };
                counter.set(counter.get() + 1);
                prop_assert_eq!(by_schema, by_rust, "{} disagrees on {:?}", uri, s);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let (accepted, refused) = (accepted.get(), refused.get());
        assert!(
            accepted > 100 && refused > 100,
            "{uri}: {accepted} accepted / {refused} refused: strategy too one-sided"
        );
    }
}
