//! Prometheus text exposition (`/metrics`) of the gateway's and the hosted vaults' counters.
//!
//! Series are named `callvault_*`; labels carry reasons, outcomes and handler buckets only, never
//! guids or addresses.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use callvault_protocol::app::AppErrorCode;
use callvault_protocol::fields::Direction;
use callvault_vault::stats::{LATENCY_BOUNDS, SetupOutcome, VaultStats};

/// The gateway's own counters.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Open app connections (authenticated or not).
    pub connections: AtomicI64,
    /// Connections ever accepted.
    pub connections_total: AtomicU64,
    /// Authenticated sessions ever started.
    pub sessions_total: AtomicU64,
    /// Frames taken from apps.
    pub frames_in: AtomicU64,
    /// Frames sent to apps.
    pub frames_out: AtomicU64,
    /// TCP connections closed at accept: every place was held.
    pub refused_total_cap: AtomicU64,
    /// TCP connections closed at accept: their source held as many as one may.
    pub refused_source_cap: AtomicU64,
    refused: [AtomicU64; AppErrorCode::ALL.len()],
}

impl GatewayMetrics {
    /// Counts one refusal.
    pub fn refuse(&self, code: AppErrorCode) {
        if let Some(c) = AppErrorCode::ALL.iter().position(|x| *x == code).and_then(|i| self.refused.get(i)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a connection closed at accept.
    pub fn connections_refused(&self, why: crate::limits::CapError) {
        let c = match why {
            crate::limits::CapError::Total => &self.refused_total_cap,
            crate::limits::CapError::PerKey => &self.refused_source_cap,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals of `code` so far.
    pub fn refused(&self, code: AppErrorCode) -> u64 {
        AppErrorCode::ALL
            .iter()
            .position(|x| *x == code)
            .and_then(|i| self.refused.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every series.
pub fn render(g: &GatewayMetrics, vaults: &[std::sync::Arc<VaultStats>], unserved: u64) -> String {
    let mut out = String::new();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    header(&mut out, "callvault_gateway_connections", "gauge", "Open app WebSocket connections.");
    let _ = writeln!(out, "callvault_gateway_connections {}", g.connections.load(Ordering::Relaxed));
    header(&mut out, "callvault_gateway_connections_total", "counter", "App connections accepted.");
    let _ = writeln!(out, "callvault_gateway_connections_total {}", load(&g.connections_total));
    header(
        &mut out,
        "callvault_gateway_connections_refused_total",
        "counter",
        "TCP connections closed at accept, by the cap they met.",
    );
    let _ =
        writeln!(out, "callvault_gateway_connections_refused_total{{cap=\"total\"}} {}", load(&g.refused_total_cap));
    let _ = writeln!(
        out,
        "callvault_gateway_connections_refused_total{{cap=\"per_source\"}} {}",
        load(&g.refused_source_cap)
    );
    header(&mut out, "callvault_gateway_sessions_total", "counter", "App connections that authenticated.");
    let _ = writeln!(out, "callvault_gateway_sessions_total {}", load(&g.sessions_total));
    header(&mut out, "callvault_gateway_frames_total", "counter", "Frames through the app API.");
    let _ = writeln!(out, "callvault_gateway_frames_total{{direction=\"in\"}} {}", load(&g.frames_in));
    let _ = writeln!(out, "callvault_gateway_frames_total{{direction=\"out\"}} {}", load(&g.frames_out));
    header(&mut out, "callvault_refused_messages_total", "counter", "Messages refused, by where and why.");
    for code in AppErrorCode::ALL {
        let _ = writeln!(
            out,
            "callvault_refused_messages_total{{source=\"gateway\",reason=\"{}\"}} {}",
            code.as_str(),
            g.refused(code)
        );
    }
    let sum = |f: &dyn Fn(&VaultStats) -> u64| vaults.iter().map(|v| f(v)).fold(0u64, u64::saturating_add);
    type Reader<'a> = &'a dyn Fn(&VaultStats) -> u64;
    let vault_reasons: [(&str, Reader<'_>); 6] = [
        ("bad_wrap", &|v| load(&v.bad_wraps)),
        ("unknown_sender", &|v| load(&v.unknown_senders)),
        ("duplicate", &|v| load(&v.duplicates)),
        ("handler_refused", &|v| load(&v.refused)),
        ("handler_failure", &|v| load(&v.handler_failures)),
        ("admin_refused", &|v| load(&v.admin_refused)),
    ];
    for (reason, f) in vault_reasons {
        let _ = writeln!(out, "callvault_refused_messages_total{{source=\"vault\",reason=\"{reason}\"}} {}", sum(f));
    }
    header(&mut out, "callvault_hosted_vaults", "gauge", "Vaults this process hosts.");
    let _ = writeln!(out, "callvault_hosted_vaults {}", vaults.len());
    header(
        &mut out,
        "callvault_unserved_vaults",
        "gauge",
        "Vault key files found at start and not served: their key is not the one their account names.",
    );
    let _ = writeln!(out, "callvault_unserved_vaults {unserved}");
    header(
        &mut out,
        "callvault_active_calls",
        "gauge",
        "Calls answered and not yet ended, as the hosted vaults see them.",
    );
    let active: i64 = vaults.iter().map(|v| v.active_calls()).fold(0, i64::saturating_add);
    let _ = writeln!(out, "callvault_active_calls {active}");
    header(&mut out, "callvault_call_setups_total", "counter", "Call setups by direction and outcome.");
    for (dir, name) in [(Direction::Outgoing, "outgoing"), (Direction::Incoming, "incoming")] {
        for o in SetupOutcome::ALL {
            let n = sum(&|v| v.setups(dir, o));
            let _ = writeln!(out, "callvault_call_setups_total{{direction=\"{name}\",outcome=\"{}\"}} {n}", o.as_str());
        }
    }
    header(&mut out, "callvault_handler_latency_seconds", "histogram", "Time per WASM handler run.");
    let mut counts = [0u64; 13];
    let mut total_secs = 0.0;
    for v in vaults {
        for (c, n) in counts.iter_mut().zip(v.handler_latency.counts()) {
            *c = c.saturating_add(n);
        }
        total_secs += v.handler_latency.sum_secs();
    }
    let mut cumulative = 0u64;
    for (bound, n) in LATENCY_BOUNDS.iter().zip(counts) {
        cumulative = cumulative.saturating_add(n);
        let _ = writeln!(out, "callvault_handler_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative = cumulative.saturating_add(counts.last().copied().unwrap_or(0));
    let _ = writeln!(out, "callvault_handler_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "callvault_handler_latency_seconds_sum {total_secs}");
    let _ = writeln!(out, "callvault_handler_latency_seconds_count {cumulative}");
    header(
        &mut out,
        "callvault_vault_timer_wakeups_total",
        "counter",
        "Times a vault's timer woke it for a deadline (none while nothing is due).",
    );
    let _ = writeln!(out, "callvault_vault_timer_wakeups_total {}", sum(&|v| load(&v.timer_wakeups)));
    if let Some(cpu) = process_cpu_seconds() {
        header(&mut out, "process_cpu_seconds_total", "counter", "User and system CPU time of this process.");
        let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
    }
    out
}

/// This process's user + system CPU time from `/proc/self/stat` (Linux; none elsewhere). Its
/// fields 14 and 15 count in USER_HZ, which the Linux ABI fixes at 100 per second.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let rest = stat.get(stat.rfind(')')?.checked_add(2)?..)?;
    let mut fields = rest.split(' ').skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user.saturating_add(system) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exposition_names_every_series_and_sums_vaults() {
        let g = GatewayMetrics::default();
        g.refuse(AppErrorCode::RateLimited);
        g.refuse(AppErrorCode::RateLimited);
        let a = std::sync::Arc::new(VaultStats::default());
        let b = std::sync::Arc::new(VaultStats::default());
        a.handler_latency.observe(Duration::from_micros(200));
        b.handler_latency.observe(Duration::from_secs(1));
        a.bad_wraps.fetch_add(3, Ordering::Relaxed);
        let text = render(&g, &[a, b], 0);
        assert!(text.contains("callvault_refused_messages_total{source=\"gateway\",reason=\"rate_limited\"} 2\n"));
        assert!(text.contains("callvault_refused_messages_total{source=\"vault\",reason=\"bad_wrap\"} 3\n"));
        assert!(text.contains("callvault_handler_latency_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("callvault_handler_latency_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("callvault_handler_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("callvault_handler_latency_seconds_count 2\n"));
        assert!(text.contains("callvault_hosted_vaults 2\n"));
        assert!(text.contains("callvault_vault_timer_wakeups_total 0\n"));
        assert!(text.contains("callvault_unserved_vaults 0\n"));
        assert!(text.contains("\nprocess_cpu_seconds_total "), "Linux: the process's CPU time");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            // Ours, and the standard process series.
            assert!(line.starts_with("callvault_") || line.starts_with("process_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
