//! Entity keys and index tags: validated once, safe inside store keys (defined with the other
//! tokens of family subjects, in `callvault_protocol::family`).

pub use callvault_protocol::family::{EntityKey, FamilySubjectError as EntityError, Tag};
