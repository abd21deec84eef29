//! coturn (Debian `coturn`) as a TURN server with TURN REST credentials (`use-auth-secret`), and
//! its `turnutils_uclient` as an independent TURN client.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{find_binary, free_port};

const INSTALL: &str = "apt-get install -y coturn";

/// A running `turnserver` on 127.0.0.1 (UDP and TCP on one port), killed on drop.
pub struct Coturn {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Coturn {
    /// Starts coturn taking REST credentials made with any of `secrets`.
    pub fn start(secrets: &[&str]) -> Self {
        let binary = find_binary("turnserver", "CALLVAULT_TURNSERVER", INSTALL);
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("turnserver.log")).expect("log file");
        // Line-buffered, so the log shows each request as it is handled (coturn block-buffers a
        // redirected stdout).
        let mut cmd = Command::new("stdbuf");
        cmd.arg("-oL").arg(binary);
        cmd.args(["-n", "--verbose", "--log-file=stdout", "--simple-log", "--no-tls", "--no-dtls", "--no-cli"])
            .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers", "--use-auth-secret"])
            .arg(format!("--listening-port={port}"))
            .arg("--realm=callvault.test")
            .arg(format!("--db={}", dir.path().join("turndb").display()))
            .arg(format!("--pidfile={}", dir.path().join("turnserver.pid").display()));
        for s in secrets {
            cmd.arg(format!("--static-auth-secret={s}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnserver: {e}. {INSTALL}"));
        let me = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !me.log().contains("Total General servers") {
            assert!(Instant::now() < deadline, "turnserver did not start:\n{}", me.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    /// The listening port (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `turn:` URLs for both transports.
    pub fn urls(&self) -> Vec<String> {
        vec![
            format!("turn:127.0.0.1:{}?transport=udp", self.port),
            format!("turn:127.0.0.1:{}?transport=tcp", self.port),
        ]
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turnserver.log")).unwrap_or_default()
    }

    /// Allocates a relay with `turnutils_uclient` using these credentials (over TCP when `tcp`).
    /// Ok when the allocation succeeded; Err with the client's output when it was refused.
    pub fn allocate(&self, username: &str, password: &str, tcp: bool) -> Result<(), String> {
        let client = find_binary("turnutils_uclient", "CALLVAULT_TURNUTILS_UCLIENT", INSTALL);
        let mut cmd = Command::new(client);
        if tcp {
            cmd.arg("-t");
        }
        let mut child = cmd
            .args(["-n", "0", "-c", "-e", "127.0.0.1", "-p", &self.port.to_string(), "-u", username, "-w", password])
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnutils_uclient: {e}. {INSTALL}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait turnutils_uclient") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("turnutils_uclient did not finish within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().expect("turnutils_uclient output");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if status.success() { Ok(()) } else { Err(text) }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
