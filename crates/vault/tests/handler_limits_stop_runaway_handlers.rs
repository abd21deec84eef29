//! A handler that loops forever or allocates without bound is stopped by its limits, and the
//! runtime handles the next event normally. Bad modules are refused at install.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod common_inputs;

use callvault_call::abi::{HandlerName, Outcome};
use callvault_vault::runtime::{BUILTIN_MODULE, HandlerError, HandlerLimits, HandlerRuntime};
use common_inputs::*;

fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "cv_input") (param i32) (result i32) (i32.const 0))
             (func (export "cv_output") (result i32) (i32.const 0))
             (func (export "cv_handle_initiate") (param i32) (result i32) {body}))"#
    ))
    .unwrap()
}

#[test]
fn an_endless_loop_runs_out_of_fuel_and_the_next_event_is_handled() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits { fuel: 5_000_000, ..HandlerLimits::default() }).unwrap();
    let spin = "(local $i i32) (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)) (i32.const 0)";
    rt.install(HandlerName::Initiate, &module(spin)).unwrap();
    assert_eq!(
        rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap_err(),
        HandlerError::OutOfFuel
    );
    // Other handlers still run, and so does initiate once a good module is back.
    let tick = callvault_call::abi::HandlerInput {
        handler: HandlerName::Timeout.as_str().into(),
        event: callvault_call::abi::Event::Timer,
        ..initiate_input(1, 2, true, at(0))
    };
    assert_eq!(rt.invoke(HandlerName::Timeout, &tick).unwrap().outcome, Outcome::Applied);
    rt.install(HandlerName::Initiate, BUILTIN_MODULE).unwrap();
    assert_eq!(rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome, Outcome::Applied);
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits { memory_bytes: 8 * 1024 * 1024, ..HandlerLimits::default() })
        .unwrap();
    rt.install(HandlerName::Initiate, &module("(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (i32.const 0)"))
        .unwrap();
    assert_eq!(
        rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap_err(),
        HandlerError::MemoryLimit
    );
    rt.install(HandlerName::Initiate, BUILTIN_MODULE).unwrap();
    assert_eq!(rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome, Outcome::Applied);
}

#[test]
fn a_trap_fails_the_event_only() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    rt.install(HandlerName::Initiate, &module("unreachable")).unwrap();
    assert!(matches!(rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))), Err(HandlerError::Trap(_))));
    // A module that answers garbage is a data error, not a crash.
    rt.install(HandlerName::Initiate, &module("(i32.const 10)")).unwrap();
    assert!(matches!(
        rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))),
        Err(HandlerError::BadData(_))
    ));
}

#[test]
fn bad_modules_are_refused_at_install_and_the_old_one_stays() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    assert!(matches!(rt.install(HandlerName::Initiate, b"not wasm"), Err(HandlerError::InvalidModule(_))));
    let missing = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    assert!(matches!(rt.install(HandlerName::Initiate, &missing), Err(HandlerError::MissingExport(_))));
    let importer = wat::parse_str(
        r#"(module (import "env" "open_socket" (func)) (memory (export "memory") 1)
             (func (export "cv_input") (param i32) (result i32) (i32.const 0))
             (func (export "cv_output") (result i32) (i32.const 0))
             (func (export "cv_handle_initiate") (param i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    assert!(matches!(rt.install(HandlerName::Initiate, &importer), Err(HandlerError::InvalidModule(_))));
    assert_eq!(rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome, Outcome::Applied);
    let empty = HandlerRuntime::new(HandlerLimits::default());
    assert_eq!(
        empty.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap_err(),
        HandlerError::NotInstalled("call.initiate".into())
    );
}
