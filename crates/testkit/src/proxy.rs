//! [`CuttingProxy`]: a TCP proxy on a free loopback port in front of a server, which cuts every
//! connection through it on demand (a network drop, as an app sees one) and can refuse new ones
//! for a while (an outage). Cut from the test, or from any process (a browser script) by
//! connecting to its control port and writing `cut <ms>\n`: it answers `cut <n>\n`, the number of
//! connections it closed, and refuses new connections for `<ms>` milliseconds.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Inner {
    target: SocketAddr,
    live: Mutex<Vec<TcpStream>>,
    refuse_until: Mutex<Option<Instant>>,
    stop: AtomicBool,
    accepted: AtomicUsize,
    refused: AtomicUsize,
}

impl Inner {
    fn cut(&self, refuse_for: Duration) -> usize {
        *self.refuse_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + refuse_for);
        let live = std::mem::take(&mut *self.live.lock().unwrap_or_else(PoisonError::into_inner));
        for s in &live {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Two sockets (client and upstream) per connection.
        live.len() / 2
    }

    fn refusing(&self) -> bool {
        self.refuse_until.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|t| Instant::now() < t)
    }
}

/// A proxy that can drop every connection through it; stopped on drop.
#[derive(Debug)]
pub struct CuttingProxy {
    port: u16,
    control_port: u16,
    inner: Arc<Inner>,
}

impl CuttingProxy {
    /// Proxies a free loopback port to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let control = TcpListener::bind("127.0.0.1:0").expect("bind the proxy's control port");
        let port = listener.local_addr().expect("proxy address").port();
        let control_port = control.local_addr().expect("control address").port();
        let inner = Arc::new(Inner {
            target,
            live: Mutex::new(Vec::new()),
            refuse_until: Mutex::new(None),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let i = inner.clone();
        std::thread::spawn(move || accept_loop(&listener, &i));
        let i = inner.clone();
        std::thread::spawn(move || control_loop(&control, &i));
        Self { port, control_port, inner }
    }

    /// The port apps connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port that cuts when written `cut <ms>\n`.
    pub fn control_port(&self) -> u16 {
        self.control_port
    }

    /// Closes every connection through the proxy and refuses new ones for `refuse_for`; how many
    /// it closed.
    pub fn cut(&self, refuse_for: Duration) -> usize {
        self.inner.cut(refuse_for)
    }

    /// Connections taken through so far.
    pub fn accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused during outages so far.
    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.cut(Duration::ZERO);
        // Wake both accept loops so that they see the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = TcpStream::connect(("127.0.0.1", self.control_port));
    }
}

fn accept_loop(listener: &TcpListener, inner: &Arc<Inner>) {
    for client in listener.incoming() {
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        if inner.refusing() {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(upstream) = TcpStream::connect(inner.target) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) =
            (client.try_clone(), upstream.try_clone(), client.try_clone(), upstream.try_clone())
        else {
            continue;
        };
        inner.accepted.fetch_add(1, Ordering::Relaxed);
        inner.live.lock().unwrap_or_else(PoisonError::into_inner).extend([c3, u3]);
        std::thread::spawn(move || pipe(client, upstream));
        std::thread::spawn(move || pipe(u2, c2));
    }
}

/// Copies `from` to `to` until either ends, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn control_loop(control: &TcpListener, inner: &Arc<Inner>) {
    for conn in control.incoming() {
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let Ok(reader) = conn.try_clone() else { continue };
        if BufReader::new(reader).read_line(&mut line).is_err() {
            continue;
        }
        let ms = line.trim().strip_prefix("cut").and_then(|r| r.trim().parse::<u64>().ok());
        let answer = match ms {
            Some(ms) => format!("cut {}\n", inner.cut(Duration::from_millis(ms))),
            None => "say: cut <ms>\n".to_owned(),
        };
        let _ = conn.write_all(answer.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn it_carries_bytes_cuts_and_refuses_for_a_while() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in server.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let _ = std::io::copy(&mut s.try_clone().unwrap(), &mut s);
                });
            }
        });
        let proxy = CuttingProxy::start(target);
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello", "echoed through the proxy");

        let mut ctl = TcpStream::connect(("127.0.0.1", proxy.control_port())).unwrap();
        ctl.write_all(b"cut 300\n").unwrap();
        let mut answer = String::new();
        BufReader::new(ctl).read_line(&mut answer).unwrap();
        assert_eq!(answer, "cut 1\n");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "the connection was closed");

        // During the outage a new connection is closed at once; after it, it carries again.
        let mut d = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(d.read(&mut buf).unwrap_or(0), 0);
        assert_eq!(proxy.refused(), 1);
        std::thread::sleep(Duration::from_millis(350));
        let mut e = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        e.write_all(b"again").unwrap();
        e.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"again");
        assert_eq!(proxy.accepted(), 2);
    }
}
