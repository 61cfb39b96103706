//! What must hold of a classic group between any two calls into it. The
//! simulation (`sim_tests.rs`) checks these after every step and every
//! restore; the transitions themselves are asserted where they happen
//! (`Group::set_state`).

use super::group::{Group, GroupConfig, GroupState};

impl Group {
    /// `Err` names the first broken invariant.
    pub fn check_invariants(&self, cfg: &GroupConfig) -> Result<(), String> {
        let fail = |what: String| {
            Err(format!(
                "group {} ({}, generation {}): {what}",
                self.id,
                self.state.name(),
                self.generation
            ))
        };
        if self.generation < 0 {
            return fail("negative generation".into());
        }
        let max = cfg.max_size as usize;
        match self.state {
            GroupState::Empty => {
                if !self.members.is_empty() || self.leader.is_some() {
                    return fail("an Empty group has members or a leader".into());
                }
                if self.deadline.is_some() {
                    return fail("an Empty group has a rebalance deadline".into());
                }
            }
            GroupState::PreparingRebalance => {
                if self.deadline.is_none() {
                    return fail("a rebalance without a deadline".into());
                }
                if self.awaiting_join() > max {
                    return fail(format!(
                        "{} members await the join, group.max.size is {max}",
                        self.awaiting_join()
                    ));
                }
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if self.members.is_empty() || self.protocol.is_none() {
                    return fail("settling or settled with no members or no protocol".into());
                }
                if self.state == GroupState::CompletingRebalance && self.deadline.is_none() {
                    return fail("awaiting SyncGroup without a deadline".into());
                }
                if self.state == GroupState::Stable && self.deadline.is_some() {
                    return fail("Stable with a rebalance deadline".into());
                }
            }
            GroupState::Dead => {}
        }
        match &self.leader {
            Some(l) if !self.members.contains_key(l) => {
                return fail(format!("leader {l} is not a member"))
            }
            None if !self.members.is_empty() => return fail("members but no leader".into()),
            _ => {}
        }
        if !self.members.is_empty() && self.protocol_type.is_none() {
            return fail("members but no protocol type".into());
        }
        for (id, m) in &self.members {
            if *id != m.id {
                return fail(format!("member {} filed under {id}", m.id));
            }
            // One member, one place: waiting for a join answer, for a sync
            // answer, or neither; never also a pending (unjoined) id.
            if m.join_waiter.is_some() && m.sync_waiter.is_some() {
                return fail(format!("member {id} waits for a join and a sync answer"));
            }
            if m.join_waiter.is_some() && self.state != GroupState::PreparingRebalance {
                return fail(format!(
                    "member {id} waits for a join answer outside a rebalance"
                ));
            }
            if m.sync_waiter.is_some() && self.state != GroupState::CompletingRebalance {
                return fail(format!(
                    "member {id} waits for a sync answer outside the sync phase"
                ));
            }
            if self.pending.contains_key(id) {
                return fail(format!("member {id} is also a pending member id"));
            }
            if let Some(inst) = &m.instance_id {
                if self.static_members.get(inst) != Some(id) {
                    return fail(format!(
                        "static member {id} ({inst}) is not in the instance map"
                    ));
                }
            }
        }
        for (inst, id) in &self.static_members {
            match self.members.get(id) {
                Some(m) if m.instance_id.as_deref() == Some(inst.as_str()) => {}
                _ => return fail(format!("instance {inst} maps to {id}, not its member")),
            }
        }
        Ok(())
    }
}
