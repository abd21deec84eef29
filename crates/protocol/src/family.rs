//! Subjects of handler families, typed.
//!
//! Every family of the vault kernel (`call`, `message`, later `room`, `hotline`) speaks on three
//! subjects, built only from validated parts:
//!
//! | subject | who publishes | who subscribes |
//! | --- | --- | --- |
//! | `OwnerSpace.{guid}.forVault.{family}.{kind}` | the user's app (through the gateway) | the user's vault |
//! | `OwnerSpace.{guid}.forApp.{family}.{kind}` | the user's vault | the user's app |
//! | `MessageSpace.{guid}.{family}.{kind}` | any vault (gift-wrapped; authenticity from the seal) | the user's vault |
//!
//! A [`FamilyName`] and a [`Kind`] are single tokens of `[a-z0-9_-]`, so no input can add or
//! widen a token; [`FamilySubject::parse`] refuses anything else. The calling module's own
//! subjects (`crate::subject`) are the `call` family's, with its kinds enumerated.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Guid;

/// Why a token or a subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamilySubjectError {
    /// A family name, kind, entity key or tag that is empty, too long, or has a character
    /// outside its alphabet.
    #[error("{what} must be 1 to {max} characters of {alphabet}")]
    Token {
        /// Which part.
        what: &'static str,
        /// Its longest length.
        max: usize,
        /// What it may hold.
        alphabet: &'static str,
    },
    /// Not one of the three shapes.
    #[error("not a family subject")]
    Shape,
    /// The guid token is not a guid.
    #[error("invalid guid: {0}")]
    Guid(#[from] crate::IdError),
}

fn lower_token(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

macro_rules! token {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $alphabet:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest one.
            pub const MAX_LEN: usize = $max;

            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, FamilySubjectError> {
                let ok: fn(&str) -> bool = $ok;
                if s.is_empty() || s.len() > $max || !ok(s) {
                    return Err(FamilySubjectError::Token { what: $what, max: $max, alphabet: $alphabet });
                }
                Ok(Self(s.to_owned()))
            }

            /// The token.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

token!(
    /// A handler family's name (`call`, `message`): a letter, then `[a-z0-9_-]`, at most 32.
    FamilyName,
    "a family name",
    32,
    "[a-z0-9_-], starting with a letter",
    |s| s.bytes().all(lower_token) && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
);
token!(
    /// A message kind, the last subject token (`initiate`, `send`): `[a-z0-9_-]`, at most 32.
    Kind,
    "a message kind",
    32,
    "[a-z0-9_-]",
    |s| s.bytes().all(lower_token)
);
token!(
    /// The key of one entity within its family (a call id, a conversation id): one store-key
    /// token, so `<family>.<entity>` is a valid key and no entity can name another's.
    EntityKey,
    "an entity key",
    128,
    "[A-Za-z0-9_=-]",
    |s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'=' || b == b'-')
);
token!(
    /// An index tag an entity carries (`live`, `active`, `with.<guid>`): lowercase tokens joined
    /// by dots.
    Tag,
    "a tag",
    96,
    "[a-z0-9_.-]",
    |s| s.bytes().all(|b| lower_token(b) || b == b'.')
);

/// Which of the three spaces a subject is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// `OwnerSpace.{guid}.forVault.…`: the user's apps to the user's vault.
    ForVault,
    /// `OwnerSpace.{guid}.forApp.…`: the user's vault to the user's apps.
    ForApp,
    /// `MessageSpace.{guid}.…`: other vaults to the user's vault.
    MessageSpace,
}

/// A family subject: space, whose, family, kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FamilySubject {
    /// Which space.
    pub space: Space,
    /// Whose vault or apps.
    pub guid: Guid,
    /// Which family.
    pub family: FamilyName,
    /// Which message.
    pub kind: Kind,
}

impl FamilySubject {
    /// A request of `guid`'s apps to their vault.
    pub fn for_vault(guid: &Guid, family: &FamilyName, kind: &Kind) -> Self {
        Self { space: Space::ForVault, guid: guid.clone(), family: family.clone(), kind: kind.clone() }
    }

    /// A notification of `guid`'s vault to its apps.
    pub fn for_app(guid: &Guid, family: &FamilyName, kind: &Kind) -> Self {
        Self { space: Space::ForApp, guid: guid.clone(), family: family.clone(), kind: kind.clone() }
    }

    /// A message to `guid`'s vault from another vault.
    pub fn message_space(guid: &Guid, family: &FamilyName, kind: &Kind) -> Self {
        Self { space: Space::MessageSpace, guid: guid.clone(), family: family.clone(), kind: kind.clone() }
    }

    /// Parses a subject, refusing wildcards, extra tokens, invalid guids and invalid tokens.
    pub fn parse(s: &str) -> Result<Self, FamilySubjectError> {
        let tokens: Vec<&str> = s.split('.').collect();
        let (space, guid, family, kind) = match tokens.as_slice() {
            ["OwnerSpace", guid, "forVault", family, kind] => (Space::ForVault, guid, family, kind),
            ["OwnerSpace", guid, "forApp", family, kind] => (Space::ForApp, guid, family, kind),
            ["MessageSpace", guid, family, kind] => (Space::MessageSpace, guid, family, kind),
            _ => return Err(FamilySubjectError::Shape),
        };
        Ok(Self { space, guid: Guid::parse(guid)?, family: FamilyName::parse(family)?, kind: Kind::parse(kind)? })
    }
}

impl fmt::Display for FamilySubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { guid, family, kind, .. } = self;
        match self.space {
            Space::ForVault => write!(f, "OwnerSpace.{guid}.forVault.{family}.{kind}"),
            Space::ForApp => write!(f, "OwnerSpace.{guid}.forApp.{family}.{kind}"),
            Space::MessageSpace => write!(f, "MessageSpace.{guid}.{family}.{kind}"),
        }
    }
}

/// A subscription pattern of one guid's space: every kind of every family (`…forVault.>`), or
/// every kind of one family (`MessageSpace.{guid}.{family}.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Everything `guid`'s apps send to their vault: `OwnerSpace.{guid}.forVault.>`.
    pub fn for_vault_all(guid: &Guid) -> Self {
        Self(format!("OwnerSpace.{guid}.forVault.>"))
    }

    /// Everything `guid`'s vault sends its apps: `OwnerSpace.{guid}.forApp.>`.
    pub fn for_app_all(guid: &Guid) -> Self {
        Self(format!("OwnerSpace.{guid}.forApp.>"))
    }

    /// Every message of one family to `guid`'s vault: `MessageSpace.{guid}.{family}.*`.
    pub fn message_space(guid: &Guid, family: &FamilyName) -> Self {
        Self(format!("MessageSpace.{guid}.{family}.*"))
    }

    /// The pattern.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Guid {
        Guid::from_public_key(&[5; 32])
    }

    #[test]
    fn subjects_round_trip() {
        let family = FamilyName::parse("message").unwrap();
        let kind = Kind::parse("send").unwrap();
        for s in [
            FamilySubject::for_vault(&g(), &family, &kind),
            FamilySubject::for_app(&g(), &family, &kind),
            FamilySubject::message_space(&g(), &family, &kind),
        ] {
            assert_eq!(FamilySubject::parse(&s.to_string()), Ok(s.clone()));
        }
        assert_eq!(
            FamilySubject::message_space(&g(), &family, &kind).to_string(),
            format!("MessageSpace.{}.message.send", g())
        );
    }

    #[test]
    fn tokens_that_could_widen_a_subject_are_refused() {
        for bad in ["", "a.b", "*", ">", "A", "a b", "é", &"a".repeat(33)] {
            assert!(FamilyName::parse(bad).is_err(), "{bad:?}");
            assert!(Kind::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FamilyName::parse("1call").is_err(), "a family starts with a letter");
        assert!(Kind::parse("1call").is_ok());
        assert!(EntityKey::parse("0b6f1c2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "é", &"a".repeat(129)] {
            assert!(EntityKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Tag::parse("with.0123abcd").is_ok());
        for bad in ["", "A", "a b", "a*", &"a".repeat(97)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<EntityKey>("\"x.y\"").is_err());
        let guid = g();
        for bad in [
            format!("OwnerSpace.{guid}.forVault.call.*"),
            format!("OwnerSpace.{guid}.forVault.call.>"),
            format!("OwnerSpace.{guid}.forVault.call"),
            format!("OwnerSpace.{guid}.forVault.call.a.b"),
            format!("MessageSpace.{guid}.call"),
            format!("MessageSpace.{guid}x.call.end"),
            "OwnerSpace.*.forVault.call.end".to_owned(),
        ] {
            assert!(FamilySubject::parse(&bad).is_err(), "{bad} was accepted");
        }
    }
}
