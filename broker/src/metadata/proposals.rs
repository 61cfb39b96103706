//! The proposals recently applied, so that a copy is applied once.
//!
//! A broker's metadata change (an admin request, an ISR change) is proposed
//! through its own quorum node, which forwards it to the active controller.
//! When that controller dies before committing it, the broker proposes it
//! again to the next one, as Kafka's broker-to-controller channel re-sends
//! a request to the new controller. The first copy may still commit (the
//! new leader had it in its log), so every copy carries the same
//! (node, proposal id) and `apply` skips a copy whose id it has seen.
//!
//! The window is part of the replicated state (and of the snapshot image):
//! every node must skip the same entries, including one that installed a
//! snapshot instead of applying the entries before it.

use std::collections::{BTreeMap, VecDeque};

/// How many proposals of one node are remembered. A copy arrives within
/// one controller failover of the first (seconds), and a node proposes a
/// few changes a second at most, so this is minutes of history; the
/// window bounds the image at 8 KiB per node.
pub const WINDOW: usize = 1024;

/// The ids applied, by the raft id of the node that proposed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedProposals {
    by_origin: BTreeMap<u64, VecDeque<u64>>,
}

impl AppliedProposals {
    pub fn contains(&self, origin: u64, proposal: u64) -> bool {
        self.by_origin
            .get(&origin)
            .is_some_and(|ids| ids.contains(&proposal))
    }

    /// Remember `proposal` (not seen before: the caller checked).
    pub fn record(&mut self, origin: u64, proposal: u64) {
        debug_assert!(!self.contains(origin, proposal), "a proposal applies once");
        let ids = self.by_origin.entry(origin).or_default();
        if ids.len() == WINDOW {
            ids.pop_front();
        }
        ids.push_back(proposal);
        assert!(ids.len() <= WINDOW);
    }

    /// (origin, ids oldest first), for the image.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &VecDeque<u64>)> {
        self.by_origin.iter().map(|(o, ids)| (*o, ids))
    }

    /// From an image's lists (oldest first); keeps the newest `WINDOW`.
    pub fn from_lists(lists: impl IntoIterator<Item = (u64, Vec<u64>)>) -> Self {
        let mut by_origin = BTreeMap::new();
        for (origin, ids) in lists {
            let skip = ids.len().saturating_sub(WINDOW);
            let ids: VecDeque<u64> = ids.into_iter().skip(skip).collect();
            by_origin.insert(origin, ids);
        }
        Self { by_origin }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_origin.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_node_and_forgets_the_oldest_past_the_window() {
        let mut w = AppliedProposals::default();
        w.record(1, 10);
        w.record(2, 10);
        assert!(w.contains(1, 10) && w.contains(2, 10));
        assert!(!w.contains(1, 11) && !w.contains(3, 10));
        for id in 11..(11 + WINDOW as u64) {
            w.record(1, id);
        }
        assert!(!w.contains(1, 10), "pushed out of the window");
        assert!(w.contains(1, 11) && w.contains(1, 10 + WINDOW as u64));
        assert!(w.contains(2, 10), "another node's window is its own");
        let lists: Vec<(u64, Vec<u64>)> = w
            .iter()
            .map(|(o, ids)| (o, ids.iter().copied().collect()))
            .collect();
        assert_eq!(AppliedProposals::from_lists(lists), w);
    }
}
