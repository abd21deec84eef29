//! The tags and timers of one family's live entities, kept by the vault in memory (and in its
//! store, so they survive a restart).

use std::collections::{BTreeSet, HashMap, HashSet};

use callvault_protocol::{Guid, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{EntityKey, Tag};

/// What the kernel knows of one entity without reading its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The peer it is with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Guid>,
    /// When its timer fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<Timestamp>,
}

impl Meta {
    /// Has a tag or a timer: the kernel keeps it in memory.
    pub fn is_live(&self) -> bool {
        !self.tags.is_empty() || self.timer.is_some()
    }
}

/// The live entities of one family: by tag, and by timer.
#[derive(Debug, Default)]
pub struct Index {
    meta: HashMap<EntityKey, Meta>,
    by_tag: HashMap<Tag, BTreeSet<EntityKey>>,
    timers: BTreeSet<(Timestamp, EntityKey)>,
    /// Entities whose timers were taken to fire and have not been stored since.
    firing: HashSet<EntityKey>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `key`'s meta (an entity that is not live is forgotten); returns the previous.
    pub fn set(&mut self, key: &EntityKey, meta: Meta) -> Option<Meta> {
        self.firing.remove(key);
        let prior = self.meta.remove(key);
        if let Some(p) = &prior {
            for t in &p.tags {
                if let Some(set) = self.by_tag.get_mut(t) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_tag.remove(t);
                    }
                }
            }
            if let Some(at) = p.timer {
                self.timers.remove(&(at, key.clone()));
            }
        }
        if meta.is_live() {
            for t in &meta.tags {
                self.by_tag.entry(t.clone()).or_default().insert(key.clone());
            }
            if let Some(at) = meta.timer {
                self.timers.insert((at, key.clone()));
            }
            self.meta.insert(key.clone(), meta);
        }
        prior
    }

    /// A live entity's meta.
    pub fn get(&self, key: &EntityKey) -> Option<&Meta> {
        self.meta.get(key)
    }

    /// The entities carrying `tag`, in key order.
    pub fn members(&self, tag: &Tag) -> impl Iterator<Item = &EntityKey> {
        self.by_tag.get(tag).into_iter().flatten()
    }

    /// How many entities carry `tag`.
    pub fn count(&self, tag: &Tag) -> usize {
        self.by_tag.get(tag).map_or(0, BTreeSet::len)
    }

    /// How many entities are live.
    pub fn live(&self) -> usize {
        self.meta.len()
    }

    /// The earliest timer not already firing.
    pub fn next_timer(&self) -> Option<Timestamp> {
        self.timers.iter().find(|(_, k)| !self.firing.contains(k)).map(|(at, _)| *at)
    }

    /// Takes the timers due at `now` to fire: they are not due again until [`Index::set`] stores
    /// their entity or [`Index::fired`] gives up on them.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<EntityKey> {
        let due: Vec<EntityKey> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter(|(_, k)| !self.firing.contains(k))
            .map(|(_, k)| k.clone())
            .collect();
        self.firing.extend(due.iter().cloned());
        due
    }

    /// A taken timer's event is over. If its entity was not stored meanwhile, its timer moves to
    /// `retry_at` (so a handler that fails, or leaves its deadline standing, is not run again at
    /// once); returns whether it had to.
    pub fn fired(&mut self, key: &EntityKey, retry_at: Timestamp) -> bool {
        if !self.firing.remove(key) {
            return false;
        }
        if let Some(mut meta) = self.meta.get(key).cloned() {
            meta.timer = Some(retry_at);
            self.set(key, meta);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> EntityKey {
        EntityKey::parse(&format!("e{n}")).unwrap()
    }

    fn tag(n: u8) -> Tag {
        Tag::parse(&format!("t{n}")).unwrap()
    }

    #[test]
    fn tags_and_timers_follow_the_last_meta() {
        let mut ix = Index::new();
        let t = |ms| Some(Timestamp::from_unix_millis(ms));
        let (one, two) = (
            Meta { tags: vec![tag(1), tag(2)], peer: None, timer: t(50) },
            Meta { tags: vec![tag(1)], peer: None, timer: t(10) },
        );
        ix.set(&key(1), one.clone());
        ix.set(&key(2), two.clone());
        assert_eq!(ix.count(&tag(1)), 2);
        assert_eq!(ix.next_timer(), t(10));
        let mut due = Index::new();
        due.set(&key(1), one);
        due.set(&key(2), two);
        assert_eq!(due.take_due(Timestamp::from_unix_millis(50)), vec![key(2), key(1)], "earliest first");
        ix.set(&key(2), Meta::default());
        assert_eq!(ix.count(&tag(1)), 1);
        assert_eq!(ix.live(), 1);
        assert_eq!(ix.next_timer(), t(50));
        ix.set(&key(1), Meta { tags: vec![], peer: None, timer: t(70) });
        assert_eq!(ix.count(&tag(2)), 0);
        assert_eq!(ix.live(), 1, "a timer alone keeps an entity live");
    }

    #[test]
    fn a_taken_timer_fires_once_until_stored_or_given_up() {
        let mut ix = Index::new();
        let at = Timestamp::from_unix_millis;
        ix.set(&key(1), Meta { tags: vec![], peer: None, timer: Some(at(10)) });
        ix.set(&key(2), Meta { tags: vec![], peer: None, timer: Some(at(20)) });
        assert_eq!(ix.take_due(at(15)), vec![key(1)]);
        assert!(ix.take_due(at(15)).is_empty(), "taken once");
        assert_eq!(ix.next_timer(), Some(at(20)), "a firing timer is not next");
        assert!(ix.fired(&key(1), at(40)));
        assert_eq!(ix.next_timer(), Some(at(20)));
        assert_eq!(ix.take_due(at(40)), vec![key(2), key(1)]);
        ix.set(&key(1), Meta { tags: vec![], peer: None, timer: Some(at(90)) });
        assert!(!ix.fired(&key(1), at(50)), "stored meanwhile: its own timer stands");
        assert_eq!(ix.get(&key(1)).unwrap().timer, Some(at(90)));
    }

    proptest! {
        /// Whatever sequence of metas, the index agrees with the last meta of each entity.
        #[test]
        fn the_index_agrees_with_the_last_meta(ops in proptest::collection::vec((0u8..6, proptest::collection::vec(0u8..4, 0..3), proptest::option::of(0i64..100)), 0..60)) {
            let mut ix = Index::new();
            let mut last: HashMap<EntityKey, Meta> = HashMap::new();
            for (k, tags, timer) in ops {
                let mut tags: Vec<Tag> = tags.into_iter().map(tag).collect();
                tags.sort();
                tags.dedup();
                let meta = Meta { tags, peer: None, timer: timer.map(Timestamp::from_unix_millis) };
                ix.set(&key(k), meta.clone());
                last.insert(key(k), meta);
            }
            let live: Vec<_> = last.iter().filter(|(_, m)| m.is_live()).collect();
            prop_assert_eq!(ix.live(), live.len());
            for n in 0..4 {
                let expected = live.iter().filter(|(_, m)| m.tags.contains(&tag(n))).count();
                prop_assert_eq!(ix.count(&tag(n)), expected);
            }
            let next = live.iter().filter_map(|(_, m)| m.timer).min();
            prop_assert_eq!(ix.next_timer(), next);
        }
    }
}
