//! Applying a desired prefix set to a kernel map as a diff: inserts and updates first, deletes
//! last, so that while an apply runs the kernel enforces the union of old and new, never less.
//! Entries that are already right are not written, which is what makes a restart cheap.

use std::{collections::HashMap, hash::Hash};

use serde::{Deserialize, Serialize};

/// What an apply changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStats {
    pub inserted: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

impl SyncStats {
    /// Map writes this apply made (inserts, updates and deletes).
    pub fn writes(&self) -> usize {
        self.inserted + self.updated + self.deleted
    }
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, other: Self) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
    }
}

impl std::fmt::Display for SyncStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "inserted={} updated={} deleted={} unchanged={}",
            self.inserted, self.updated, self.deleted, self.unchanged
        )
    }
}

/// The difference between what a map holds and what it should hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Diff<K, V> {
    /// New keys.
    pub inserts: Vec<(K, V)>,
    /// Keys whose value changes.
    pub updates: Vec<(K, V)>,
    /// Keys to remove, applied last.
    pub deletes: Vec<K>,
    pub unchanged: usize,
}

impl<K, V> Diff<K, V> {
    fn empty() -> Self {
        Self {
            inserts: Vec::new(),
            updates: Vec::new(),
            deletes: Vec::new(),
            unchanged: 0,
        }
    }
}

pub fn diff<K, V>(current: &HashMap<K, V>, desired: &HashMap<K, V>) -> Diff<K, V>
where
    K: Eq + Hash + Clone,
    V: PartialEq + Clone,
{
    let mut d = Diff::empty();
    for (key, value) in desired {
        match current.get(key) {
            None => d.inserts.push((key.clone(), value.clone())),
            Some(old) if old != value => d.updates.push((key.clone(), value.clone())),
            Some(_) => d.unchanged += 1,
        }
    }
    d.deletes = current
        .keys()
        .filter(|key| !desired.contains_key(key))
        .cloned()
        .collect();
    d
}

/// [`diff`] for two sets sorted by key with unique keys, in one linear merge: no hashing, which
/// matters at a million prefixes.
pub fn diff_sorted<K, V>(
    current: impl IntoIterator<Item = (K, V)>,
    desired: impl IntoIterator<Item = (K, V)>,
) -> Diff<K, V>
where
    K: Ord + Clone,
    V: PartialEq + Clone,
{
    let mut d = Diff::empty();
    let (mut c, mut w) = (
        current.into_iter().peekable(),
        desired.into_iter().peekable(),
    );
    loop {
        match (c.peek(), w.peek()) {
            (Some((ck, cv)), Some((wk, wv))) => match ck.cmp(wk) {
                std::cmp::Ordering::Less => {
                    d.deletes.push(ck.clone());
                    c.next();
                }
                std::cmp::Ordering::Greater => {
                    d.inserts.push((wk.clone(), wv.clone()));
                    w.next();
                }
                std::cmp::Ordering::Equal => {
                    if cv == wv {
                        d.unchanged += 1;
                    } else {
                        d.updates.push((wk.clone(), wv.clone()));
                    }
                    c.next();
                    w.next();
                }
            },
            (Some((ck, _)), None) => {
                d.deletes.push(ck.clone());
                c.next();
            }
            (None, Some((wk, wv))) => {
                d.inserts.push((wk.clone(), wv.clone()));
                w.next();
            }
            (None, None) => return d,
        }
    }
}

/// Writes a computed diff: inserts and updates first, deletes last.
pub fn write_diff<T: SyncTarget>(
    target: &mut T,
    d: &Diff<T::Key, T::Value>,
) -> Result<SyncStats, T::Error> {
    write_diff_then(target, d, |_| Ok(()))
}

/// [`write_diff`], with `before_deletes` run after every insert and update and before the
/// first delete: a target with a part it writes whole switches it there, so the old content
/// goes only once the new is in force.
pub fn write_diff_then<T: SyncTarget>(
    target: &mut T,
    d: &Diff<T::Key, T::Value>,
    before_deletes: impl FnOnce(&mut T) -> Result<(), T::Error>,
) -> Result<SyncStats, T::Error> {
    target.upsert_many(&d.inserts)?;
    target.upsert_many(&d.updates)?;
    // Deletes of a part written whole only mark it changed; marked first so
    // `before_deletes` sees every change.
    target.note_deletes(&d.deletes);
    before_deletes(target)?;
    target.delete_many(&d.deletes)?;
    Ok(SyncStats {
        inserted: d.inserts.len(),
        updated: d.updates.len(),
        deleted: d.deletes.len(),
        unchanged: d.unchanged,
    })
}

/// A key-value map the sync engine can read back and write; the kernel's tries implement it,
/// and tests use an in-memory one.
pub trait SyncTarget {
    type Key: Eq + Hash + Clone;
    type Value: PartialEq + Clone;
    type Error;

    fn read_all(&self) -> Result<HashMap<Self::Key, Self::Value>, Self::Error>;
    fn upsert(&mut self, key: &Self::Key, value: &Self::Value) -> Result<(), Self::Error>;
    fn delete(&mut self, key: &Self::Key) -> Result<(), Self::Error>;

    /// Told the keys about to be deleted, before any is: a target with a part it writes whole
    /// learns that part changed (see [`write_diff_then`]).
    fn note_deletes(&mut self, _keys: &[Self::Key]) {}

    /// Deletes many entries; targets with a cheaper bulk path override this.
    fn delete_many(&mut self, keys: &[Self::Key]) -> Result<(), Self::Error> {
        keys.iter().try_for_each(|key| self.delete(key))
    }

    /// Writes many entries; targets with a cheaper bulk path override this.
    fn upsert_many(&mut self, items: &[(Self::Key, Self::Value)]) -> Result<(), Self::Error> {
        items
            .iter()
            .try_for_each(|(key, value)| self.upsert(key, value))
    }
}

/// Reads `target` back, then writes only the difference to `desired`: inserts and updates
/// first, deletes last. On error, what was written stays (a superset of the old content until
/// the deletes start, and deletes only remove what `desired` no longer holds).
pub fn apply<T: SyncTarget>(
    target: &mut T,
    desired: &HashMap<T::Key, T::Value>,
) -> Result<SyncStats, T::Error> {
    let current = target.read_all()?;
    write_diff(target, &diff(&current, desired))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory target that records the order of writes.
    #[derive(Default)]
    struct Recorder {
        map: HashMap<u32, char>,
        log: Vec<String>,
    }

    impl SyncTarget for Recorder {
        type Key = u32;
        type Value = char;
        type Error = std::convert::Infallible;

        fn read_all(&self) -> Result<HashMap<u32, char>, Self::Error> {
            Ok(self.map.clone())
        }
        fn upsert(&mut self, key: &u32, value: &char) -> Result<(), Self::Error> {
            self.log.push(format!("+{key}"));
            self.map.insert(*key, *value);
            Ok(())
        }
        fn delete(&mut self, key: &u32) -> Result<(), Self::Error> {
            self.log.push(format!("-{key}"));
            self.map.remove(key);
            Ok(())
        }
    }

    #[test]
    fn writes_only_the_difference_with_deletes_last() {
        let mut target = Recorder {
            map: HashMap::from([(1, 'a'), (2, 'b'), (3, 'c')]),
            log: Vec::new(),
        };
        let desired = HashMap::from([(1, 'a'), (2, 'x'), (4, 'd')]);
        let stats = apply(&mut target, &desired).expect("infallible");
        assert_eq!(
            stats,
            SyncStats {
                inserted: 1,
                updated: 1,
                deleted: 1,
                unchanged: 1
            }
        );
        assert_eq!(target.map, desired);
        let first_delete = target.log.iter().position(|w| w.starts_with('-'));
        assert_eq!(first_delete, Some(target.log.len() - 1), "{:?}", target.log);
    }

    #[test]
    fn the_sorted_diff_agrees_with_the_hashed_one() {
        let current = [(1, 'a'), (3, 'c'), (5, 'e'), (7, 'g')];
        let desired = [(0, 'z'), (3, 'c'), (5, 'x'), (9, 'i')];
        let sorted = diff_sorted(current.iter().copied(), desired.iter().copied());
        let hashed = diff(
            &current.iter().copied().collect(),
            &desired.iter().copied().collect(),
        );
        let norm = |mut d: Diff<i32, char>| {
            d.inserts.sort_unstable();
            d.updates.sort_unstable();
            d.deletes.sort_unstable();
            d
        };
        assert_eq!(norm(sorted), norm(hashed));
    }

    #[test]
    fn an_unchanged_set_writes_nothing() {
        let mut target = Recorder {
            map: HashMap::from([(1, 'a'), (2, 'b')]),
            log: Vec::new(),
        };
        let desired = target.map.clone();
        let stats = apply(&mut target, &desired).expect("infallible");
        assert_eq!(stats.writes(), 0);
        assert_eq!(stats.unchanged, 2);
        assert!(target.log.is_empty());
    }
}
