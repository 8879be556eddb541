//! `SmallMap`: a sorted map that is a vector of exactly what it holds while small, and a
//! B-tree once large. A `BTreeMap` allocates a node with room for eleven entries for its
//! first one (hundreds of bytes), while most presence topics — a page read by one or two
//! people — hold one or two keys; past [`SMALL_MAX`] entries the B-tree keeps inserts
//! and removals O(log n) on busy topics. Iteration is in key order either way.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::collections::btree_map;

/// Entries held in the vector form; one more makes it a B-tree.
pub const SMALL_MAX: usize = 16;

#[derive(Debug, Clone)]
pub enum SmallMap<K, V> {
    Small(Vec<(K, V)>),
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn find<Q: Ord + ?Sized>(v: &[(K, V)], key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        v.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get_key_value<Q: Ord + ?Sized>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        match self {
            Self::Small(v) => Self::find(v, key).ok().map(|i| (&v[i].0, &v[i].1)),
            Self::Large(m) => m.get_key_value(key),
        }
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match self {
            Self::Small(v) => Self::find(v, key).ok().map(|i| &mut v[i].1),
            Self::Large(m) => m.get_mut(key),
        }
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.get_key_value(key).is_some()
    }

    /// The value of `key`, inserting `make()` first when it is absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if let Self::Small(v) = self
            && v.len() >= SMALL_MAX
            && Self::find(v, &key).is_err()
        {
            *self = Self::Large(std::mem::take(v).into_iter().collect());
        }
        match self {
            Self::Small(v) => {
                let i = match Self::find(v, &key) {
                    Ok(i) => i,
                    Err(i) => {
                        // Grow from one slot, doubling: most maps stay at one or two.
                        if v.len() == v.capacity() {
                            v.reserve_exact(v.len().max(1));
                        }
                        v.insert(i, (key, make()));
                        i
                    }
                };
                &mut v[i].1
            }
            Self::Large(m) => m.entry(key).or_insert_with(make),
        }
    }

    /// Inserts or replaces; returns the replaced value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot = self.get_or_insert_with(key, || value.take().expect("taken once"));
        value.map(|new| std::mem::replace(slot, new))
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let removed = match self {
            Self::Small(v) => {
                let (_, value) = v.remove(Self::find(v, key).ok()?);
                if v.len() <= v.capacity() / 4 {
                    v.shrink_to_fit();
                }
                value
            }
            Self::Large(m) => m.remove(key)?,
        };
        // Back to a vector well below the switch point, so a map near it does not flip
        // on every insert and removal.
        if let Self::Large(m) = self
            && m.len() <= SMALL_MAX / 2
        {
            let mut v = Vec::with_capacity(m.len());
            v.extend(std::mem::take(m));
            *self = Self::Small(v);
        }
        Some(removed)
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        match self {
            Self::Small(v) => Iter::Small(v.iter()),
            Self::Large(m) => Iter::Large(m.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Iterator over a [`SmallMap`] in key order.
pub enum Iter<'a, K, V> {
    Small(std::slice::Iter<'a, (K, V)>),
    Large(btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Large(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Small(i) => i.size_hint(),
            Iter::Large(i) => i.size_hint(),
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_btreemap_through_growth_and_shrinking() {
        let mut small = SmallMap::new();
        let mut model = BTreeMap::new();
        // A fixed pseudo-random walk of inserts and removals over 64 keys.
        let mut x: u32 = 7;
        for step in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let key = (x >> 16) % 64;
            // Mostly inserts early, mostly removals late: the map grows past and falls
            // back below the switch point.
            if (x >> 8) % 100 < if step < 2500 { 70 } else { 30 } {
                assert_eq!(small.insert(key, step), model.insert(key, step));
            } else {
                assert_eq!(small.remove(&key), model.remove(&key));
            }
            assert_eq!(small.len(), model.len());
            assert!(small.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
            assert_eq!(small.get(&key), model.get(&key));
        }
    }

    #[test]
    fn a_small_map_holds_only_what_it_needs() {
        let mut m: SmallMap<u64, u64> = SmallMap::new();
        m.insert(1, 1);
        let SmallMap::Small(v) = &m else { panic!("small") };
        assert_eq!(v.capacity(), 1);
        for k in 2..=(SMALL_MAX as u64 + 1) {
            m.insert(k, k);
        }
        assert!(matches!(m, SmallMap::Large(_)));
        for k in 1..=(SMALL_MAX as u64 / 2 + 1) {
            m.remove(&k);
        }
        assert!(matches!(m, SmallMap::Small(_)));
        assert_eq!(*m.get_or_insert_with(100, || 5), 5);
    }
}
