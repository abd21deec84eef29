//! The harness itself: several servers at once, each its own; drop kills; restart keeps the port
//! and the store; a missing binary is a failure that says how to install it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::time::Duration;

use callvault_testkit::NatsServer;

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

#[test]
fn several_servers_run_at_once_on_their_own_ports_and_drop_kills_them() {
    let central = NatsServer::start();
    let vault_a = NatsServer::start();
    let vault_b = NatsServer::start();
    let ports = [central.port(), vault_a.port(), vault_b.port()];
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    assert!(ports.iter().all(|&p| accepts(p)));
    drop(vault_a);
    assert!(!accepts(ports[1]), "a dropped server still listens");
    assert!(accepts(ports[0]) && accepts(ports[2]));
}

#[test]
fn stop_and_start_again_keep_the_port() {
    let mut s = NatsServer::start();
    let port = s.port();
    s.stop();
    assert!(!accepts(port));
    s.start_again();
    assert_eq!(s.port(), port);
    assert!(accepts(port));
    assert!(s.log().contains("Server is ready"), "{}", s.log());
}
