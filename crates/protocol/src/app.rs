//! The app API: JSON text frames between an app and the gateway over one WebSocket
//! (`docs/APP-API.md`).
//!
//! 1. The gateway sends [`ServerFrame::Challenge`]. The app answers [`AppFrame::Auth`]: a Nostr note
//!    of kind [`AUTH_KIND`] whose content is the challenge, signed with the user's identity key.
//! 2. A user without an account gets [`ServerFrame::RegisterRequired`] with a fresh vault key; the
//!    app signs a delegation of it and sends [`AppFrame::Register`].
//! 3. [`ServerFrame::Ready`]: from now the app publishes into its own
//!    `OwnerSpace.{guid}.forVault.>` ([`AppFrame::Publish`]) and receives its own
//!    `OwnerSpace.{guid}.forApp.>` ([`ServerFrame::Message`]).
//!
//! Anything refused is answered with [`ServerFrame::Error`] naming an [`AppErrorCode`].

use serde::{Deserialize, Serialize};

use crate::Guid;

/// The Nostr kind of the signed challenge answer (the NIP-42 authentication kind).
pub const AUTH_KIND: u16 = 22_242;
/// The Nostr kind of a signed HTTP request (NIP-98), for `GET /calls/turn-credentials`.
pub const HTTP_AUTH_KIND: u16 = 27_235;

/// Frames the app sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppFrame {
    /// The signed challenge.
    Auth {
        /// Nostr event JSON, kind [`AUTH_KIND`], content = the challenge.
        note: String,
    },
    /// Registration of a new user.
    Register {
        /// The user's delegation of the vault key offered in `register_required` (event JSON).
        delegation: String,
        /// How the user is shown to connections.
        display_name: String,
    },
    /// Publish into the user's own `forVault`.
    Publish {
        /// `OwnerSpace.{own guid}.forVault.<...>`.
        subject: String,
        /// The message (a JSON object).
        payload: serde_json::Value,
    },
    /// Ask for TURN credentials.
    TurnCredentials {
        /// Echoed in the answer.
        request_id: String,
        /// Only relay candidates (hide the device's addresses).
        #[serde(default)]
        relay_only: bool,
    },
    /// Keep-alive; answered with `pong`.
    Ping {},
}

/// Frames the gateway sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerFrame {
    /// Sign this.
    Challenge {
        /// 64 hex characters, fresh per connection.
        challenge: String,
        /// The gateway's clock (Unix seconds), so the app can stamp its note.
        server_time: u64,
    },
    /// The user has no account: delegate this vault key to register.
    RegisterRequired {
        /// The new vault's public key (hex).
        vault_key: String,
    },
    /// Authenticated.
    Ready {
        /// The user's guid.
        guid: Guid,
        /// The vault's public key (hex).
        vault_key: String,
        /// The user's delegation of it (event JSON): the app puts it into invites.
        delegation: String,
        /// The name the account was registered with.
        display_name: String,
        /// Limits this connection is held to.
        limits: Limits,
    },
    /// A message from the user's vault.
    Message {
        /// `OwnerSpace.{own guid}.forApp.<...>`.
        subject: String,
        /// The message.
        payload: serde_json::Value,
    },
    /// TURN credentials.
    TurnCredentials {
        /// From the request.
        request_id: String,
        /// The credentials.
        credentials: TurnCredentials,
    },
    /// Keep-alive answer.
    Pong {},
    /// Something was refused.
    Error {
        /// What.
        code: AppErrorCode,
        /// Why, for humans (no secrets).
        message: String,
    },
}

/// Limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame taken, bytes.
    pub max_frame_bytes: usize,
    /// Sustained frames per second.
    pub messages_per_second: u32,
    /// Burst of frames above the rate.
    pub burst: u32,
    /// Connections one identity may hold at once.
    pub connections_per_identity: u32,
    /// Seconds without any frame (pongs count) before the connection is closed.
    pub idle_timeout_secs: u64,
}

/// Why the gateway refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppErrorCode {
    /// The frame is not JSON or not a known frame.
    BadFrame,
    /// The frame is larger than `max_frame_bytes`.
    FrameTooLarge,
    /// More frames than the rate allows.
    RateLimited,
    /// The challenge answer does not verify, is for another challenge, or is stale.
    BadSignature,
    /// The expected frame did not come in time.
    AuthTimeout,
    /// No account and registration is closed.
    RegistrationClosed,
    /// The registration does not hold (delegation, name).
    BadRegistration,
    /// Too many connections of this identity.
    TooManyConnections,
    /// The subject is not the user's own `forVault`.
    ForbiddenSubject,
    /// The payload is not a JSON object or is too large.
    BadPayload,
    /// A frame that is valid only before (or after) authentication.
    WrongState,
    /// No frame within the idle timeout.
    IdleTimeout,
    /// The user's vault is on another server that this one cannot reach.
    Unavailable,
    /// The server is shutting down.
    ShuttingDown,
    /// An internal failure (logged on the server).
    Internal,
    /// The app does not read what is sent to it fast enough: its outgoing queue filled, or a
    /// send did not complete in time.
    SlowConsumer,
}

impl AppErrorCode {
    /// Every code, for metrics labels.
    pub const ALL: [Self; 16] = [
        Self::BadFrame,
        Self::FrameTooLarge,
        Self::RateLimited,
        Self::BadSignature,
        Self::AuthTimeout,
        Self::RegistrationClosed,
        Self::BadRegistration,
        Self::TooManyConnections,
        Self::ForbiddenSubject,
        Self::BadPayload,
        Self::WrongState,
        Self::IdleTimeout,
        Self::Unavailable,
        Self::ShuttingDown,
        Self::Internal,
        Self::SlowConsumer,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::RateLimited => "rate_limited",
            Self::BadSignature => "bad_signature",
            Self::AuthTimeout => "auth_timeout",
            Self::RegistrationClosed => "registration_closed",
            Self::BadRegistration => "bad_registration",
            Self::TooManyConnections => "too_many_connections",
            Self::ForbiddenSubject => "forbidden_subject",
            Self::BadPayload => "bad_payload",
            Self::WrongState => "wrong_state",
            Self::IdleTimeout => "idle_timeout",
            Self::Unavailable => "unavailable",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
            Self::SlowConsumer => "slow_consumer",
        }
    }
}

/// `GET /calls/turn-credentials` answer (seed Phase 6), also sent over the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnCredentials {
    /// For `RTCPeerConnection`'s `iceServers`.
    pub ice_servers: Vec<IceServer>,
    /// When the credentials stop working (RFC 3339).
    pub expires_at: String,
    /// `relay` when only relay candidates may be used, else `all`.
    pub ice_transport_policy: String,
}

/// One ICE server entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN REST username `expiry:guid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// base64 HMAC-SHA1 of the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Whether calls are allowed with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Calls allowed.
    Active,
    /// Revoked by this user: calls refused both ways.
    Revoked,
}

/// One connection as the app sees it (`connection.list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSummary {
    /// The peer's guid.
    pub guid: Guid,
    /// Their identity key (hex): the app seals `call.signal` payloads to it.
    pub user_key: crate::fields::KeyHex,
    /// Their display name.
    pub display_name: crate::fields::DisplayName,
    /// Active or revoked.
    pub state: ConnectionState,
}

/// Whether `subject` is one `guid`'s app may publish to: `OwnerSpace.{guid}.forVault.` and one
/// to four more tokens of `[A-Za-z0-9_-]` (no wildcards).
pub fn app_may_publish(guid: &Guid, subject: &str) -> bool {
    let Some(rest) = subject.strip_prefix("OwnerSpace.").and_then(|s| s.strip_prefix(guid.as_str())) else {
        return false;
    };
    let Some(tail) = rest.strip_prefix(".forVault.") else { return false };
    let tokens: Vec<&str> = tail.split('.').collect();
    (1..=4).contains(&tokens.len())
        && tokens
            .iter()
            .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_for_vault_subjects_are_publishable() {
        let me = Guid::from_public_key(&[1; 32]);
        let other = Guid::from_public_key(&[2; 32]);
        assert!(app_may_publish(&me, &format!("OwnerSpace.{me}.forVault.call.initiate")));
        assert!(app_may_publish(&me, &format!("OwnerSpace.{me}.forVault.history.list")));
        for bad in [
            format!("OwnerSpace.{other}.forVault.call.initiate"),
            format!("OwnerSpace.{me}.forApp.call.incoming"),
            format!("OwnerSpace.{me}.forVault.>"),
            format!("OwnerSpace.{me}.forVault.*"),
            format!("OwnerSpace.{me}.forVault.call..x"),
            format!("OwnerSpace.{me}.forVault."),
            format!("OwnerSpace.{me}.forVault.a.b.c.d.e"),
            format!("OwnerSpace.{me}x.forVault.call.end"),
            format!("MessageSpace.{me}.call.incoming"),
            format!("OwnerSpace.{me}.forVault.call.end "),
        ] {
            assert!(!app_may_publish(&me, &bad), "{bad}");
        }
    }

    #[test]
    fn frames_round_trip_and_unknown_fields_are_refused() {
        let f = AppFrame::TurnCredentials { request_id: "1".into(), relay_only: true };
        let s = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<AppFrame>(&s).unwrap(), f);
        assert!(serde_json::from_str::<AppFrame>(r#"{"type":"ping","x":1}"#).is_err());
        assert!(serde_json::from_str::<AppFrame>(r#"{"type":"subscribe","subject":">"}"#).is_err());
        let e = ServerFrame::Error { code: AppErrorCode::RateLimited, message: "slow down".into() };
        assert_eq!(serde_json::to_value(&e).unwrap()["code"], "rate_limited");
        for c in AppErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
