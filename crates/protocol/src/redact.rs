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

/// Displays the wrapped value with every personal identifier it may hold shortened to 6
/// characters and an ellipsis: runs of 32 or more hex digits (guids, keys, note ids, bucket names
/// made from a guid) and bech32 keys (`npub1…`, `nsec1…`, `nprofile1…`). For errors whose text
/// may carry such things (a path, a bucket name) on their way into a log line.
pub struct Scrubbed<'a, T: fmt::Display + ?Sized>(pub &'a T);

impl<T: fmt::Display + ?Sized> fmt::Display for Scrubbed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scrub(&self.0.to_string()))
    }
}

impl<T: fmt::Display + ?Sized> fmt::Debug for Scrubbed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `text` with identifiers shortened (see [`Scrubbed`]).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let word_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        let word = rest.get(..word_len).unwrap_or_default();
        if word_len == 0 {
            out.push(c);
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
            continue;
        }
        let bech32 = ["npub1", "nsec1", "nprofile1"].iter().any(|p| word.starts_with(p)) && word_len >= 20;
        if bech32 {
            out.push_str(word.get(..6).unwrap_or(word));
            out.push('…');
        } else {
            shorten_hex_runs(word, &mut out);
        }
        rest = rest.get(word_len..).unwrap_or_default();
    }
    out
}

/// Copies `word`, shortening each run of 32 or more hex digits in it.
fn shorten_hex_runs(word: &str, out: &mut String) {
    let mut rest = word;
    while !rest.is_empty() {
        let run = rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len());
        if run >= 32 {
            out.push_str(rest.get(..6).unwrap_or_default());
            out.push('…');
        } else {
            out.push_str(rest.get(..run).unwrap_or_default());
        }
        rest = rest.get(run..).unwrap_or_default();
        let other = rest.find(|c: char| c.is_ascii_hexdigit()).unwrap_or(rest.len());
        out.push_str(rest.get(..other).unwrap_or_default());
        rest = rest.get(other..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_shortened_and_the_rest_kept() {
        let guid = "0123456789abcdef0123456789abcdef01234567";
        let text = format!("vault key file /data/vault-keys/{guid}.key: denied; bucket {guid}_calls");
        assert_eq!(scrub(&text), "vault key file /data/vault-keys/012345….key: denied; bucket 012345…_calls");
        let npub = "npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m";
        assert_eq!(scrub(&format!("key {npub} refused")), "key npub1s… refused");
        // Short hex (ports, codes, years) stays.
        assert_eq!(scrub("os error 111 at 2026-12-01, deadbeef"), "os error 111 at 2026-12-01, deadbeef");
        assert_eq!(Scrubbed(&format!("MessageSpace.{guid}.call.offer")).to_string(), "MessageSpace.012345….call.offer");
        assert_eq!(scrub("é→ü"), "é→ü");
    }
}
