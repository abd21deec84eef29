//! NATS subject rules: what a subject and a subscription pattern may be, and which subjects a
//! pattern matches.
//!
//! A subject is one or more non-empty tokens separated by `.`, with no whitespace. A pattern may
//! also use `*` (exactly one token) and, as its last token only, `>` (one or more tokens). A
//! wildcard matches whole tokens only: `a.*` matches `a.b` but not `a.b.c` and not `ab`.

/// Why a subject or pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Empty, or an empty token (`a..b`, `.a`, `a.`).
    #[error("empty subject or token")]
    EmptyToken,
    /// Whitespace or a control character.
    #[error("whitespace or control character in subject")]
    Whitespace,
    /// A wildcard where a concrete subject is required.
    #[error("wildcards are not allowed when publishing")]
    Wildcard,
    /// `*` or `>` inside a token, or `>` not last.
    #[error("misplaced wildcard")]
    MisplacedWildcard,
    /// Longer than the limit.
    #[error("subject longer than {0} bytes")]
    TooLong(usize),
}

/// Longest subject accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 512;

fn tokens(s: &str) -> Result<std::str::Split<'_, char>, SubjectError> {
    if s.len() > MAX_SUBJECT_BYTES {
        return Err(SubjectError::TooLong(MAX_SUBJECT_BYTES));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SubjectError::Whitespace);
    }
    if s.is_empty() || s.split('.').any(str::is_empty) {
        return Err(SubjectError::EmptyToken);
    }
    Ok(s.split('.'))
}

/// Checks a concrete subject (for publishing): no wildcards.
pub fn check_subject(s: &str) -> Result<(), SubjectError> {
    for t in tokens(s)? {
        if t == "*" || t == ">" {
            return Err(SubjectError::Wildcard);
        }
        if t.contains('*') || t.contains('>') {
            return Err(SubjectError::MisplacedWildcard);
        }
    }
    Ok(())
}

/// Checks a subscription pattern.
pub fn check_pattern(s: &str) -> Result<(), SubjectError> {
    let all: Vec<&str> = tokens(s)?.collect();
    let last = all.len().saturating_sub(1);
    for (i, t) in all.iter().enumerate() {
        let wild = *t == "*" || (*t == ">" && i == last);
        if !wild && (t.contains('*') || t.contains('>')) {
            return Err(SubjectError::MisplacedWildcard);
        }
    }
    Ok(())
}

/// Whether `subject` (concrete) matches `pattern`. Both are assumed valid.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(pt), Some(st)) if pt == st => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_tokens_only() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(matches("a.*.c", "a.b-x.c"));
        assert!(!matches("a.*.c", "a.b.d"));
        assert!(!matches("a.*.c", "a.b.c.d"));
        assert!(!matches("a.*.c", "a.c"));
        assert!(matches("a.>", "a.b"));
        assert!(matches("a.>", "a.b.c.d"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.*", "ab.c"));
        assert!(!matches("ab", "a"));
        assert!(!matches("a", "ab"));
        assert!(matches(">", "x.y"));
        assert!(matches("*", "x"));
        assert!(!matches("*", "x.y"));
        assert!(matches("OwnerSpace.g-1.forVault.call.*", "OwnerSpace.g-1.forVault.call.initiate"));
        assert!(!matches("OwnerSpace.g-1.forVault.call.*", "OwnerSpace.g-2.forVault.call.initiate"));
    }

    #[test]
    fn bad_subjects_and_patterns_are_refused() {
        for bad in ["", "a..b", ".a", "a.", "a b", "a\tb", "a.\n"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_subject("a.*"), Err(SubjectError::Wildcard));
        assert_eq!(check_subject("a.>"), Err(SubjectError::Wildcard));
        assert_eq!(check_subject("a.b*"), Err(SubjectError::MisplacedWildcard));
        assert_eq!(check_pattern("a.>.b"), Err(SubjectError::MisplacedWildcard));
        assert_eq!(check_pattern("a.b>"), Err(SubjectError::MisplacedWildcard));
        assert!(check_pattern("a.*.>").is_ok());
        assert!(check_subject(&"a".repeat(MAX_SUBJECT_BYTES + 1)).is_err());
    }
}
