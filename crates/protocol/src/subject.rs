//! NATS subjects of the calling module.
//!
//! | subject | who publishes | who subscribes |
//! | --- | --- | --- |
//! | `OwnerSpace.{guid}.forVault.call.<request>` | the user's app (through the gateway) | the user's vault |
//! | `OwnerSpace.{guid}.forApp.call.<notification>` | the user's vault | the user's app |
//! | `MessageSpace.{guid}.call.<peer message>` | any vault (sealed; authenticity from the seal) | the user's vault |
//!
//! Subjects are built only from a [`Guid`], which cannot contain `.`, `*`, `>` or spaces, so no
//! input can add or widen a token. [`Subject::parse`] refuses anything else.

use std::fmt;

use crate::{Guid, IdError};

macro_rules! kinds {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $token:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every kind.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The last subject token.
            pub fn token(self) -> &'static str {
                match self { $(Self::$variant => $token),+ }
            }

            /// The message `type` carried on this subject (`call.<token>`).
            pub fn message_type(self) -> &'static str {
                match self { $(Self::$variant => concat!("call.", $token)),+ }
            }

            fn from_token(t: &str) -> Option<Self> {
                match t { $($token => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

kinds!(
    /// App -> vault request types.
    RequestKind { /** initiate */ Initiate = "initiate", /** accept */ Accept = "accept", /** reject */ Reject = "reject", /** end */ End = "end", /** signal */ Signal = "signal" }
);
kinds!(
    /// Vault -> vault message types.
    PeerKind { /** incoming */ Incoming = "incoming", /** ringing */ Ringing = "ringing", /** accept */ Accept = "accept", /** reject */ Reject = "reject", /** end */ End = "end", /** signal */ Signal = "signal" }
);
kinds!(
    /// Vault -> app notification types.
    NotificationKind {
        /** initiated */ Initiated = "initiated", /** incoming */ Incoming = "incoming", /** ringing */ Ringing = "ringing",
        /** accepted */ Accepted = "accepted", /** rejected */ Rejected = "rejected", /** ended */ Ended = "ended",
        /** signal */ Signal = "signal", /** error */ Error = "error"
    }
);

/// A parsed calling subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `OwnerSpace.{guid}.forVault.call.<kind>`
    ForVault {
        /// Whose vault.
        guid: Guid,
        /// Which request.
        kind: RequestKind,
    },
    /// `OwnerSpace.{guid}.forApp.call.<kind>`
    ForApp {
        /// Whose app.
        guid: Guid,
        /// Which notification.
        kind: NotificationKind,
    },
    /// `MessageSpace.{guid}.call.<kind>`
    MessageSpace {
        /// Whose vault receives it.
        guid: Guid,
        /// Which message.
        kind: PeerKind,
    },
}

/// Why a string is not a calling subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Neither `OwnerSpace.{guid}.forVault|forApp.call.<type>` nor `MessageSpace.{guid}.call.<type>`.
    #[error("not a calling subject")]
    Shape,
    /// The guid token is not a guid.
    #[error("invalid guid: {0}")]
    Guid(#[from] IdError),
    /// The last token is not a message type of that space.
    #[error("unknown message type {0:?} for this subject")]
    UnknownType(String),
}

impl Subject {
    /// Parses a subject, refusing wildcards, extra tokens and invalid guids.
    pub fn parse(s: &str) -> Result<Self, SubjectError> {
        let tokens: Vec<&str> = s.split('.').collect();
        let unknown = |t: &str| SubjectError::UnknownType(t.chars().take(32).collect());
        match tokens.as_slice() {
            ["OwnerSpace", guid, "forVault", "call", t] => Ok(Self::ForVault {
                guid: Guid::parse(guid)?,
                kind: RequestKind::from_token(t).ok_or_else(|| unknown(t))?,
            }),
            ["OwnerSpace", guid, "forApp", "call", t] => Ok(Self::ForApp {
                guid: Guid::parse(guid)?,
                kind: NotificationKind::from_token(t).ok_or_else(|| unknown(t))?,
            }),
            ["MessageSpace", guid, "call", t] => Ok(Self::MessageSpace {
                guid: Guid::parse(guid)?,
                kind: PeerKind::from_token(t).ok_or_else(|| unknown(t))?,
            }),
            _ => Err(SubjectError::Shape),
        }
    }

    /// The guid the subject belongs to.
    pub fn guid(&self) -> &Guid {
        match self {
            Self::ForVault { guid, .. } | Self::ForApp { guid, .. } | Self::MessageSpace { guid, .. } => guid,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForVault { guid, kind } => write!(f, "OwnerSpace.{guid}.forVault.call.{}", kind.token()),
            Self::ForApp { guid, kind } => write!(f, "OwnerSpace.{guid}.forApp.call.{}", kind.token()),
            Self::MessageSpace { guid, kind } => write!(f, "MessageSpace.{guid}.call.{}", kind.token()),
        }
    }
}

/// `OwnerSpace.{guid}.forVault.call.*`: what a vault subscribes to for its app's requests.
pub fn for_vault_calls(guid: &Guid) -> String {
    format!("OwnerSpace.{guid}.forVault.call.*")
}

/// `OwnerSpace.{guid}.forApp.call.*`: what an app receives.
pub fn for_app_calls(guid: &Guid) -> String {
    format!("OwnerSpace.{guid}.forApp.call.*")
}

/// `MessageSpace.{guid}.call.*`: what a vault subscribes to for its peers' messages.
pub fn message_space_calls(guid: &Guid) -> String {
    format!("MessageSpace.{guid}.call.*")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Guid {
        Guid::from_public_key(&[3; 32])
    }

    #[test]
    fn every_subject_round_trips() {
        let mut all = Vec::new();
        all.extend(RequestKind::ALL.iter().map(|&kind| Subject::ForVault { guid: g(), kind }));
        all.extend(NotificationKind::ALL.iter().map(|&kind| Subject::ForApp { guid: g(), kind }));
        all.extend(PeerKind::ALL.iter().map(|&kind| Subject::MessageSpace { guid: g(), kind }));
        assert_eq!(all.len(), 19);
        for s in all {
            assert_eq!(Subject::parse(&s.to_string()), Ok(s.clone()));
        }
        assert_eq!(
            Subject::ForVault { guid: g(), kind: RequestKind::Initiate }.to_string(),
            format!("OwnerSpace.{}.forVault.call.initiate", g())
        );
    }

    #[test]
    fn injected_or_malformed_subjects_are_refused() {
        let guid = g();
        for bad in [
            format!("OwnerSpace.{guid}.forVault.call.*"),
            format!("OwnerSpace.{guid}.forVault.call.>"),
            format!("OwnerSpace.{guid}.forVault.call.initiate.extra"),
            format!("OwnerSpace.{guid}.forApp.call.initiate"),
            format!("MessageSpace.{guid}.call.initiated"),
            "OwnerSpace.*.forVault.call.initiate".to_owned(),
            "OwnerSpace.>.forVault.call.initiate".to_owned(),
            "OwnerSpace..forVault.call.initiate".to_owned(),
            format!("OwnerSpace.{guid}x.forVault.call.initiate"),
            format!("MessageSpace.{guid}.forOwner.x"),
            String::new(),
        ] {
            assert!(Subject::parse(&bad).is_err(), "{bad} was accepted");
        }
        assert!(matches!(Subject::parse("OwnerSpace.a b.forVault.call.end"), Err(SubjectError::Guid(_))));
    }

    #[test]
    fn subscription_patterns_name_one_guid() {
        let guid = g();
        assert_eq!(for_vault_calls(&guid), format!("OwnerSpace.{guid}.forVault.call.*"));
        assert_eq!(for_app_calls(&guid), format!("OwnerSpace.{guid}.forApp.call.*"));
        assert_eq!(message_space_calls(&guid), format!("MessageSpace.{guid}.call.*"));
    }
}
