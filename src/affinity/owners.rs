//! Node identities and owner sets.
//!
//! A node's [`NodeId`] is a small stable index (allocated by name, kept across reloads), so an owner set is a
//! 64-bit bitset: copying, comparing and intersecting it with the healthy set is one instruction.

use std::fmt;

/// The most nodes one pool can hold: the width of [`NodeSet`].
pub const MAX_NODES: usize = 64;

/// A node's stable index in the pool, `0..MAX_NODES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u8);

impl NodeId {
    /// The id with index `index`, or `None` when it does not fit in a [`NodeSet`].
    pub fn new(index: usize) -> Option<NodeId> {
        (index < MAX_NODES).then_some(NodeId(index as u8))
    }

    /// The index of this id.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of nodes as a bitset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeSet(u64);

impl NodeSet {
    /// No node.
    pub const EMPTY: NodeSet = NodeSet(0);

    /// The set holding only `id`.
    pub fn single(id: NodeId) -> NodeSet {
        NodeSet(1 << id.0)
    }

    /// The set from its raw bits (for persistence).
    pub fn from_bits(bits: u64) -> NodeSet {
        NodeSet(bits)
    }

    /// The raw bits (for persistence).
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Whether `id` is in the set.
    pub fn contains(self, id: NodeId) -> bool {
        self.0 & (1 << id.0) != 0
    }

    /// The set with `id` added.
    #[must_use]
    pub fn with(self, id: NodeId) -> NodeSet {
        NodeSet(self.0 | 1 << id.0)
    }

    /// The set with `id` removed.
    #[must_use]
    pub fn without(self, id: NodeId) -> NodeSet {
        NodeSet(self.0 & !(1 << id.0))
    }

    /// Nodes in both sets.
    #[must_use]
    pub fn intersection(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & other.0)
    }

    /// Nodes in either set.
    #[must_use]
    pub fn union(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 | other.0)
    }

    /// Nodes in `self` but not in `other`.
    #[must_use]
    pub fn difference(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & !other.0)
    }

    /// Whether every node of `other` is in `self`.
    pub fn is_superset(self, other: NodeSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many nodes the set holds.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The members in increasing id order.
    pub fn iter(self) -> impl Iterator<Item = NodeId> {
        (0..MAX_NODES as u8)
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(NodeId)
    }
}

impl FromIterator<NodeId> for NodeSet {
    fn from_iter<I: IntoIterator<Item = NodeId>>(iter: I) -> Self {
        iter.into_iter().fold(NodeSet::EMPTY, NodeSet::with)
    }
}

impl fmt::Debug for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|id| id.0)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    #[test]
    fn node_id_refuses_indices_past_the_bitset() {
        assert!(NodeId::new(63).is_some());
        assert!(NodeId::new(64).is_none());
    }

    #[test]
    fn set_operations_behave_like_sets() {
        let a: NodeSet = [id(0), id(2)].into_iter().collect();
        let b = NodeSet::single(id(2)).with(id(63));
        assert_eq!(a.intersection(b), NodeSet::single(id(2)));
        assert_eq!(a.union(b).len(), 3);
        assert!(a.union(b).is_superset(a));
        assert!(!a.is_superset(b));
        assert_eq!(a.without(id(0)), NodeSet::single(id(2)));
        assert_eq!(a.difference(b), NodeSet::single(id(0)));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![id(2), id(63)]);
        assert!(NodeSet::EMPTY.is_empty());
    }
}
