//! `callvault serve` configuration (`docs/CONFIG.md`): a TOML file, then `CALLVAULT_*`
//! environment variables, then flags; each later source overrides the earlier. A bad value is
//! refused with a message naming its key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use callvault_gateway::{GatewayConfig, ListenConfig, TurnConfig};
use callvault_protocol::app::Limits;
use serde::Deserialize;

/// Every key, its environment variable, and its type (for overrides from the environment).
pub(crate) const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("data_dir", Kind::Str),
    ("nats", Kind::Str),
    ("registration", Kind::Str),
    ("log", Kind::Str),
    ("web_dir", Kind::Str),
    ("limits.max_frame_bytes", Kind::Int),
    ("limits.messages_per_second", Kind::Int),
    ("limits.burst", Kind::Int),
    ("limits.connections_per_identity", Kind::Int),
    ("limits.idle_timeout_secs", Kind::Int),
    ("limits.max_connections", Kind::Int),
    ("limits.max_connections_per_source", Kind::Int),
    ("limits.header_timeout_secs", Kind::Int),
    ("limits.auth_timeout_secs", Kind::Int),
    ("limits.max_unauthenticated", Kind::Int),
    ("limits.max_unauthenticated_per_source", Kind::Int),
    ("limits.logins_per_second", Kind::Int),
    ("limits.login_burst", Kind::Int),
    ("limits.send_timeout_secs", Kind::Int),
    ("limits.max_queued_bytes", Kind::Int),
    ("metrics.token", Kind::Str),
    ("trusted_proxies", Kind::List),
    ("test_hooks", Kind::Bool),
    ("turn.stun_urls", Kind::List),
    ("turn.turn_urls", Kind::List),
    ("turn.secrets", Kind::List),
    ("turn.ttl_secs", Kind::Int),
    ("turn.relay_only", Kind::Bool),
    ("vault.ring_timeout_secs", Kind::Int),
    ("vault.sweep_every_secs", Kind::Int),
    ("shutdown_grace_secs", Kind::Int),
];

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text.
    Str,
    /// Whole number.
    Int,
    /// true/false.
    Bool,
    /// Comma-separated in the environment, an array in TOML.
    List,
}

/// The environment variable of `key`: `CALLVAULT_` + upper case, dots as underscores.
pub(crate) fn env_name(key: &str) -> String {
    format!("CALLVAULT_{}", key.replace('.', "_").to_uppercase())
}

/// A refused configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {reason}")]
    File {
        /// Which.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key has a bad value (or is unknown).
    #[error("config key `{key}`: {reason}")]
    Key {
        /// Which (dotted path).
        key: String,
        /// Why.
        reason: String,
    },
}

fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key { key: key.to_owned(), reason: reason.into() }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default)]
    nats: Option<String>,
    #[serde(default = "default_registration")]
    registration: String,
    #[serde(default = "default_log")]
    log: String,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    turn: RawTurn,
    #[serde(default)]
    vault: RawVault,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    test_hooks: bool,
    #[serde(default = "default_grace")]
    shutdown_grace_secs: u64,
    #[serde(default)]
    web_dir: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:7700".into()
}
fn default_data_dir() -> String {
    "callvault-data".into()
}
fn default_registration() -> String {
    "open".into()
}
fn default_log() -> String {
    "info".into()
}
fn default_grace() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_frame_bytes: u64,
    messages_per_second: u64,
    burst: u64,
    connections_per_identity: u64,
    idle_timeout_secs: u64,
    max_connections: u64,
    max_connections_per_source: u64,
    header_timeout_secs: u64,
    auth_timeout_secs: u64,
    max_unauthenticated: u64,
    max_unauthenticated_per_source: u64,
    logins_per_second: u64,
    login_burst: u64,
    send_timeout_secs: u64,
    max_queued_bytes: u64,
}

fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Default for RawLimits {
    fn default() -> Self {
        let g = GatewayConfig::default();
        let d = g.limits;
        let l = ListenConfig::default();
        Self {
            max_frame_bytes: wide(d.max_frame_bytes),
            messages_per_second: d.messages_per_second.into(),
            burst: d.burst.into(),
            connections_per_identity: d.connections_per_identity.into(),
            idle_timeout_secs: d.idle_timeout_secs,
            max_connections: wide(l.max_connections),
            max_connections_per_source: wide(l.max_connections_per_source),
            header_timeout_secs: l.header_timeout.as_secs(),
            auth_timeout_secs: g.auth_timeout.as_secs(),
            max_unauthenticated: wide(g.max_unauthenticated),
            max_unauthenticated_per_source: wide(g.max_unauthenticated_per_source),
            logins_per_second: g.logins_per_second.into(),
            login_burst: g.login_burst.into(),
            send_timeout_secs: g.send_timeout.as_secs(),
            max_queued_bytes: wide(g.max_queued_bytes),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTurn {
    stun_urls: Vec<String>,
    turn_urls: Vec<String>,
    secrets: Vec<String>,
    ttl_secs: u64,
    relay_only: bool,
}

impl Default for RawTurn {
    fn default() -> Self {
        Self { stun_urls: vec![], turn_urls: vec![], secrets: vec![], ttl_secs: 86_400, relay_only: false }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawVault {
    ring_timeout_secs: u64,
    sweep_every_secs: u64,
}

impl Default for RawVault {
    fn default() -> Self {
        Self { ring_timeout_secs: 60, sweep_every_secs: 30 }
    }
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    /// HTTP and WebSocket address.
    pub(crate) listen: SocketAddr,
    /// Where the embedded store and the vault keys live.
    pub(crate) data_dir: PathBuf,
    /// NATS URL; none: embedded bus and store.
    pub(crate) nats: Option<String>,
    /// The gateway.
    pub(crate) gateway: GatewayConfig,
    /// The listening socket's caps and deadlines.
    pub(crate) listen_limits: ListenConfig,
    /// Ring timeout.
    pub(crate) ring_timeout: Duration,
    /// Sweep period.
    pub(crate) sweep_every: Duration,
    /// Log level.
    pub(crate) log: tracing::Level,
    /// How long shutdown waits for vaults.
    pub(crate) shutdown_grace: Duration,
}

fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut t = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            t.insert(p.to_owned(), value);
            return;
        }
        let entry = t.entry(p.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else { return };
        t = next;
    }
}

fn typed(key: &str, kind: Kind, text: &str) -> Result<toml::Value, ConfigError> {
    Ok(match kind {
        Kind::Str => toml::Value::String(text.to_owned()),
        Kind::Int => toml::Value::Integer(
            text.trim().parse().map_err(|_| key_error(key, format!("{text:?} is not a whole number")))?,
        ),
        Kind::Bool => toml::Value::Boolean(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(key_error(key, format!("{text:?} is not true or false"))),
        }),
        Kind::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

fn positive(key: &str, v: u64) -> Result<u64, ConfigError> {
    if v == 0 { Err(key_error(key, "must be at least 1")) } else { Ok(v) }
}

fn small(key: &str, v: u64) -> Result<u32, ConfigError> {
    u32::try_from(positive(key, v)?).map_err(|_| key_error(key, "too large"))
}

fn count(key: &str, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(positive(key, v)?).map_err(|_| key_error(key, "too large"))
}

fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(positive(key, v)?))
}

/// Loads the configuration: `file` (if any), then `env` (name, value pairs), then `flags`
/// (dotted key, text value).
pub(crate) fn load(
    file: Option<&std::path::Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[(&str, String)],
) -> Result<ServeConfig, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?;
            toml::from_str::<toml::Table>(&text)
                .map_err(|e| ConfigError::File { path: path.to_owned(), reason: e.to_string() })?
        }
        None => toml::Table::new(),
    };
    let env: std::collections::HashMap<String, String> = env.into_iter().collect();
    for (key, kind) in KEYS {
        if let Some(v) = env.get(&env_name(key)) {
            set(&mut table, key, typed(key, *kind, v)?);
        }
    }
    for (key, value) in flags {
        let kind = KEYS.iter().find(|(k, _)| k == key).map_or(Kind::Str, |(_, k)| *k);
        set(&mut table, key, typed(key, kind, value)?);
    }
    let raw: Raw = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Name the key itself, also when the error points at its table.
        let key = match inner.split('`').nth(1) {
            Some(k) if inner.starts_with("unknown field") => {
                if path == "." || path.is_empty() {
                    k.to_owned()
                } else if path.ends_with(k) {
                    path
                } else {
                    format!("{path}.{k}")
                }
            }
            _ => path,
        };
        key_error(&key, inner)
    })?;
    check(raw)
}

fn check(raw: Raw) -> Result<ServeConfig, ConfigError> {
    let listen: SocketAddr = raw
        .listen
        .parse()
        .map_err(|_| key_error("listen", format!("{:?} is not an address like 127.0.0.1:7700", raw.listen)))?;
    if raw.data_dir.trim().is_empty() {
        return Err(key_error("data_dir", "must not be empty"));
    }
    if let Some(url) = &raw.nats
        && !(url.starts_with("nats://") || url.starts_with("tls://"))
    {
        return Err(key_error("nats", "must start with nats:// or tls://"));
    }
    let registration_open = match raw.registration.as_str() {
        "open" => true,
        "closed" => false,
        other => return Err(key_error("registration", format!("{other:?} is neither \"open\" nor \"closed\""))),
    };
    let log =
        raw.log.parse::<tracing::Level>().map_err(|_| key_error("log", "one of error, warn, info, debug, trace"))?;
    let l = &raw.limits;
    let limits = Limits {
        max_frame_bytes: usize::try_from(positive("limits.max_frame_bytes", l.max_frame_bytes)?)
            .map_err(|_| key_error("limits.max_frame_bytes", "too large"))?,
        messages_per_second: small("limits.messages_per_second", l.messages_per_second)?,
        burst: small("limits.burst", l.burst)?,
        connections_per_identity: small("limits.connections_per_identity", l.connections_per_identity)?,
        idle_timeout_secs: positive("limits.idle_timeout_secs", l.idle_timeout_secs)?,
    };
    if limits.max_frame_bytes < 1024 || limits.max_frame_bytes > 16 * 1024 * 1024 {
        return Err(key_error("limits.max_frame_bytes", "must be between 1024 and 16777216"));
    }
    let t = raw.turn;
    for (key, urls, schemes) in [
        ("turn.stun_urls", &t.stun_urls, &["stun:", "stuns:"][..]),
        ("turn.turn_urls", &t.turn_urls, &["turn:", "turns:"][..]),
    ] {
        if let Some(bad) = urls.iter().find(|u| !schemes.iter().any(|s| u.starts_with(s))) {
            return Err(key_error(key, format!("{bad:?} does not start with {}", schemes.join(" or "))));
        }
    }
    let turn = if t.turn_urls.is_empty() {
        if !t.secrets.is_empty() {
            return Err(key_error("turn.turn_urls", "secrets are set but no TURN URL is"));
        }
        None
    } else {
        if t.secrets.is_empty() || t.secrets.iter().any(|s| s.len() < 16) {
            return Err(key_error("turn.secrets", "at least one secret, each of 16 characters or more"));
        }
        Some(TurnConfig {
            stun_urls: t.stun_urls,
            turn_urls: t.turn_urls,
            secrets: t.secrets,
            ttl_secs: positive("turn.ttl_secs", t.ttl_secs)?,
            relay_only: t.relay_only,
        })
    };
    if let Some(token) = &raw.metrics.token
        && token.len() < 16
    {
        return Err(key_error("metrics.token", "must be 16 characters or more"));
    }
    let listen_limits = ListenConfig {
        max_connections: count("limits.max_connections", l.max_connections)?,
        max_connections_per_source: count("limits.max_connections_per_source", l.max_connections_per_source)?,
        header_timeout: secs("limits.header_timeout_secs", l.header_timeout_secs)?,
        trusted_proxies: raw
            .trusted_proxies
            .iter()
            .map(|p| p.parse().map_err(|_| key_error("trusted_proxies", format!("{p:?} is not an IP address"))))
            .collect::<Result<_, _>>()?,
    };
    Ok(ServeConfig {
        listen,
        data_dir: PathBuf::from(raw.data_dir),
        nats: raw.nats,
        gateway: GatewayConfig {
            limits,
            turn,
            registration_open,
            // The embedded browser client, unless a directory replaces it.
            web_dir: raw.web_dir.map(PathBuf::from),
            auth_timeout: secs("limits.auth_timeout_secs", l.auth_timeout_secs)?,
            max_unauthenticated: count("limits.max_unauthenticated", l.max_unauthenticated)?,
            max_unauthenticated_per_source: count(
                "limits.max_unauthenticated_per_source",
                l.max_unauthenticated_per_source,
            )?,
            logins_per_second: small("limits.logins_per_second", l.logins_per_second)?,
            login_burst: small("limits.login_burst", l.login_burst)?,
            send_timeout: secs("limits.send_timeout_secs", l.send_timeout_secs)?,
            max_queued_bytes: count("limits.max_queued_bytes", l.max_queued_bytes)?,
            metrics_token: raw.metrics.token,
            test_hooks: raw.test_hooks,
        },
        listen_limits,
        ring_timeout: Duration::from_secs(positive("vault.ring_timeout_secs", raw.vault.ring_timeout_secs)?),
        sweep_every: Duration::from_secs(positive("vault.sweep_every_secs", raw.vault.sweep_every_secs)?),
        log,
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<ServeConfig, ConfigError>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn defaults_are_embedded_on_loopback() {
        let c = load(None, [], &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7700");
        assert!(c.nats.is_none());
        assert!(c.gateway.registration_open);
        assert!(c.gateway.turn.is_none());
    }

    #[test]
    fn flags_override_env_which_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\n[limits]\nburst = 7\n").unwrap();
        let env = [
            ("CALLVAULT_LISTEN".to_owned(), "127.0.0.1:2".to_owned()),
            ("CALLVAULT_LIMITS_BURST".to_owned(), "9".to_owned()),
            ("CALLVAULT_TURN_TURN_URLS".to_owned(), "turn:127.0.0.1:3478, turns:x:5349".to_owned()),
            ("CALLVAULT_TURN_SECRETS".to_owned(), "0123456789abcdef".to_owned()),
        ];
        let c = load(Some(&file), env.clone(), &[("listen", "127.0.0.1:3".into())]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3");
        assert_eq!(c.data_dir, PathBuf::from("/a"));
        assert_eq!(c.gateway.limits.burst, 9);
        assert_eq!(c.gateway.turn.unwrap().turn_urls, vec!["turn:127.0.0.1:3478", "turns:x:5349"]);
        let c = load(Some(&file), env, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:2");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let cases = [
            ("listen = \"nowhere\"", "`listen`"),
            ("lisen = \"127.0.0.1:1\"", "`lisen`"),
            ("[limits]\nburst = \"many\"", "`limits.burst`"),
            ("[limits]\nbrust = 3", "`limits.brust`"),
            ("[limits]\nburst = 0", "`limits.burst`"),
            ("registration = \"maybe\"", "`registration`"),
            ("nats = \"http://x\"", "`nats`"),
            ("[turn]\nturn_urls = [\"http://x\"]", "`turn.turn_urls`"),
            ("[turn]\nturn_urls = [\"turn:x\"]\nsecrets = [\"short\"]", "`turn.secrets`"),
            ("[vault]\nring_timeout_secs = -1", "`vault.ring_timeout_secs`"),
            ("log = \"loud\"", "`log`"),
        ];
        for (text, key) in cases {
            std::fs::write(&file, text).unwrap();
            let e = err(load(Some(&file), [], &[]));
            assert!(e.contains(key), "{text:?} -> {e}");
        }
        let e = err(load(None, [("CALLVAULT_LIMITS_BURST".into(), "x".into())], &[]));
        assert!(e.contains("`limits.burst`"), "{e}");
        std::fs::write(&file, "listen = ").unwrap();
        assert!(err(load(Some(&file), [], &[])).contains("c.toml"));
    }
}
