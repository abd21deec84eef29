//! `callvault serve` as a process, for the binary's own tests and benches (they pass its path:
//! `env!("CARGO_BIN_EXE_callvault")`). It listens on a free loopback port and is killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `callvault serve`.
pub struct ServeProcess {
    child: Child,
    addr: String,
    data_dir: PathBuf,
}

impl ServeProcess {
    /// Starts `bin serve` on `data_dir` with extra flags and environment (`CALLVAULT_LOG` is `warn`
    /// unless `env` says otherwise); returns once it listens.
    pub fn start(bin: &Path, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with_stderr(bin, data_dir, args, env, Stdio::inherit())
    }

    /// [`ServeProcess::start`] with its log (stderr) written to `log`.
    pub fn start_logging_to(bin: &Path, data_dir: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        Self::start_with_stderr(bin, data_dir, args, env, Stdio::from(file))
    }

    fn start_with_stderr(bin: &Path, data_dir: &Path, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Self {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("CALLVAULT_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("serve's first line");
        let addr = line
            .strip_prefix("callvault listening on ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in out.lines() {});
        Self { child, addr, data_dir: data_dir.to_owned() }
    }

    /// `http://host:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The app API: `ws://host:port/app`.
    pub fn url(&self) -> String {
        format!("ws://{}/app", self.addr)
    }

    /// `GET path` with extra header lines (`"Name: value"`), over a fresh connection:
    /// (status, body).
    pub fn get(&self, path: &str, headers: &[&str]) -> (u16, String) {
        http_get(&self.addr, path, headers)
    }

    /// The value of an unlabelled series in `/metrics` (`None`: not there).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) = self.get("/metrics", &[]);
        assert_eq!(status, 200, "/metrics: {body}");
        series(&body, name)
    }

    /// The data directory it was started on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process as a crash would (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (up to 20 s) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr` (`host:port`) with extra header lines, HTTP/1.1 with `Connection: close`:
/// (status, body). Panics on a malformed answer or after 10 s without one.
pub fn http_get(addr: &str, path: &str, headers: &[&str]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("GET {path}: no head in {text:?}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("status in {head:?}"));
    let chunked = head.lines().any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    (status, if chunked { dechunk(body) } else { body.to_owned() })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or(rest));
        body = rest.get(n..).unwrap_or("").trim_start_matches("\r\n");
    }
    out
}

/// The value of the unlabelled series `name` in a Prometheus text body.
pub fn series(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
