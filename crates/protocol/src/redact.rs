//! Redaction of personal identifiers in logs.
//!
//! Wrap a guid (or anything displayable that identifies a person) in [`Redacted`] before it reaches
//! a log line: it prints the first 6 characters and an ellipsis, enough to correlate lines of one
//! incident, too little to identify the user.

use std::fmt;

/// Displays a short prefix of the wrapped value and hides the rest.
pub struct Redacted<'a, T: fmt::Display + ?Sized>(pub &'a T);

impl<T: fmt::Display + ?Sized> fmt::Display for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.0.to_string();
        let prefix: String = full.chars().take(6).collect();
        write!(f, "{prefix}…")
    }
}

impl<T: fmt::Display + ?Sized> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
