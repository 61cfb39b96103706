//! `group_max_size` (Kafka's `group.max.size` and
//! `group.consumer.max.size`): how many members a group may have.

use super::group::{Group, GroupConfig, GroupState};

impl Group {
    /// Kafka's `acceptJoiningMember` for a new member: an Empty group takes
    /// anyone; during a rebalance the members already waiting to join count
    /// (the group's size may still hold members that will not rejoin);
    /// otherwise the members.
    pub(super) fn accepts_new_member(&self, cfg: &GroupConfig) -> bool {
        let max = cfg.max_size as usize;
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => self.awaiting_join() < max,
            GroupState::CompletingRebalance | GroupState::Stable => self.members.len() < max,
        }
    }

    /// Members whose JoinGroup waits for the rebalance to complete.
    pub(super) fn awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.join_waiter.is_some())
            .count()
    }
}

/// Kafka's message when a consumer-protocol group is full
/// (`throwIfConsumerGroupIsFull`), word for word.
pub fn consumer_group_full(max_size: u32) -> String {
    format!("The consumer group has reached its maximum capacity of {max_size} members.")
}
