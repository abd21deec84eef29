//! Parsing untrusted bytes into a message, with an error that names the field at fault.

use serde::de::DeserializeOwned;

/// Largest message accepted, in bytes, before any parsing: room for a 64 KiB signal payload and
/// the header.
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024;

/// Why bytes are not a valid message. Safe to log: it never contains field values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Size received.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not JSON (or truncated JSON).
    #[error("not valid JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field is missing, unknown, of the wrong type, or out of bounds. `field` is a dotted
    /// path (`peer_profile.display_name`); `$` is the message itself.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ParseError {
    /// A field error.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Field { field: field.into(), reason: reason.into() }
    }

    /// The dotted path of the field at fault, when the error is about one.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Parses `bytes` as the JSON object `T`, then runs `T`'s cross-field checks.
pub(crate) fn from_json<T: DeserializeOwned + crate::registry::Schema>(bytes: &[u8]) -> Result<T, ParseError> {
    let Object(value) = from_json_value::<Object<T>>(bytes)?;
    value.check()?;
    Ok(value)
}

/// A `T` that must arrive as a JSON object (see [`crate::fields::object`]).
struct Object<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::fields::object(d).map(Object)
    }
}

/// Parses `bytes` as any `T` (objects, strings, enums), with the size limit and field paths.
pub(crate) fn from_json_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    // Valid input, the common case, parses without tracking the path (which wraps every field's
    // deserializer, a real cost under a WASM interpreter). Input that fails parses again with the
    // tracking, to name the field at fault.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| classify(e, bytes))?;
    // What the fast path refused but a lone value parses: characters after the value.
    de.end().map_err(|e| ParseError::Syntax { line: e.line(), column: e.column() })?;
    Ok(value)
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>, bytes: &[u8]) -> ParseError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    // serde_json reports some type mismatches (an array where an enum belongs) as syntax errors;
    // only call it a syntax error when the bytes really are not JSON.
    if !inner.is_data() && (path == "." || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err()) {
        return ParseError::Syntax { line: inner.line(), column: inner.column() };
    }
    let mut reason = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    if let Some(stripped) = reason.strip_suffix(&suffix) {
        reason = stripped.to_owned();
    }
    // serde reports a missing field at the enclosing object; name the field itself.
    let named = reason.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_owned);
    let base = if path == "." { String::new() } else { path };
    let field = match (named, base.is_empty()) {
        (Some(name), true) => name,
        (Some(name), false) => format!("{base}.{name}"),
        (None, true) => "$".to_owned(),
        (None, false) => base,
    };
    // Keep reasons short and free of echoed values beyond serde's own wording.
    let reason: String = reason.chars().take(200).collect();
    ParseError::Field { field, reason }
}

#[cfg(test)]
mod tests {
    use crate::calling::{CallIncomingNotification, CallInitiateRequest};
    use crate::registry::Schema;

    use super::*;

    const GUID: &str = "0123456789abcdef0123456789abcdef01234567";
    const ID: &str = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";

    #[test]
    fn one_message_per_document() {
        let ok = format!(
            r#"{{"type":"call.initiate","message_id":"{ID}","call_id":"{ID}","timestamp":"2026-11-22T10:00:00Z","peer_guid":"{GUID}","call_type":"audio"}}"#
        );
        assert!(CallInitiateRequest::from_json(ok.as_bytes()).is_ok());
        assert!(CallInitiateRequest::from_json(format!("  {ok}\n").as_bytes()).is_ok());
        for trailing in [format!("{ok} x"), format!("{ok}{ok}"), format!("{ok},")] {
            let e = CallInitiateRequest::from_json(trailing.as_bytes()).unwrap_err();
            assert!(matches!(e, ParseError::Syntax { .. }), "{e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let missing = format!(
            r#"{{"type":"call.initiate","message_id":"{ID}","call_id":"{ID}","timestamp":"2026-11-22T10:00:00Z","call_type":"audio"}}"#
        );
        let e = CallInitiateRequest::from_json(missing.as_bytes()).unwrap_err();
        assert_eq!(e.field_path(), Some("peer_guid"), "{e}");

        let unknown = format!(
            r#"{{"type":"call.initiate","message_id":"{ID}","call_id":"{ID}","timestamp":"2026-11-22T10:00:00Z","peer_guid":"{GUID}","call_type":"audio","x":1}}"#
        );
        let e = CallInitiateRequest::from_json(unknown.as_bytes()).unwrap_err();
        assert_eq!(e.field_path(), Some("x"), "{e}");

        let bad_guid = format!(
            r#"{{"type":"call.initiate","message_id":"{ID}","call_id":"{ID}","timestamp":"2026-11-22T10:00:00Z","peer_guid":"a.b","call_type":"audio"}}"#
        );
        let e = CallInitiateRequest::from_json(bad_guid.as_bytes()).unwrap_err();
        assert_eq!(e.field_path(), Some("peer_guid"), "{e}");

        let nested = format!(
            r#"{{"type":"call.incoming","message_id":"{ID}","call_id":"{ID}","timestamp":"2026-11-22T10:00:00Z","peer_guid":"{GUID}","call_type":"audio","peer_profile":{{"display_name":""}}}}"#
        );
        let e = CallIncomingNotification::from_json(nested.as_bytes()).unwrap_err();
        assert_eq!(e.field_path(), Some("peer_profile.display_name"), "{e}");
    }

    #[test]
    fn syntax_and_size_errors_are_distinct() {
        assert!(matches!(CallInitiateRequest::from_json(b"{\"type\":"), Err(ParseError::Syntax { .. })));
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(CallInitiateRequest::from_json(&big), Err(ParseError::TooLarge { .. })));
        assert_eq!(CallInitiateRequest::from_json(b"[]").unwrap_err().field_path(), Some("$"));
    }
}
