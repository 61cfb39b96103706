//! The simulated consumers of the group simulation: what each does next
//! (join, sync, heartbeat, commit, leave, stale requests, fall silent and
//! come back), and the checks on the answers it gets.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use shard::rt::{spawn_local, Task};
use shard::time::Clock;

use super::Sim;
use crate::groups::group::{GroupState, JoinParams, JoinResult, SyncParams, SyncResult};
use crate::groups::offsets::CommitEntry;

type Slot<T> = Rc<RefCell<Option<T>>>;

/// A simulated consumer.
pub(super) struct Client {
    pub(super) name: String,
    pub(super) group: String,
    pub(super) instance: Option<String>,
    pub(super) member_id: String,
    pub(super) generation: i32,
    pub(super) session_ms: i32,
    pub(super) rebalance_ms: i32,
    /// A JoinGroup or SyncGroup under way (dropped: the client went away).
    pub(super) join: Option<(Task<()>, Slot<JoinResult>)>,
    pub(super) sync: Option<(Task<()>, Slot<SyncResult>)>,
    /// A join answer not yet followed by SyncGroup.
    pub(super) joined: Option<JoinResult>,
    /// Silent: sends nothing until it comes back as a new incarnation.
    pub(super) silent: bool,
}

impl Sim {
    fn join_params(&self, c: usize) -> JoinParams {
        let c = &self.clients[c];
        JoinParams {
            member_id: c.member_id.clone(),
            instance_id: c.instance.clone(),
            client_id: c.name.clone(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: c.session_ms,
            rebalance_timeout_ms: c.rebalance_ms,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from(c.group.clone()))],
            require_known_member_id: false,
        }
    }

    pub(super) fn start_join(&mut self, c: usize) {
        let mut p = self.join_params(c);
        p.require_known_member_id = p.member_id.is_empty() && self.rng.chance(500);
        let slot: Slot<JoinResult> = Default::default();
        let (coord, out, group) = (
            self.coord.clone(),
            slot.clone(),
            self.clients[c].group.clone(),
        );
        self.note(format!(
            "{} join {}",
            self.clients[c].name,
            self.name(&p.member_id)
        ));
        let task = spawn_local(async move {
            let r = coord.join(group, p).await;
            *out.borrow_mut() = Some(r);
        });
        self.clients[c].join = Some((task, slot));
    }

    fn start_sync(&mut self, c: usize, joined: JoinResult) -> Result<(), String> {
        let client = &self.clients[c];
        let group = client.group.clone();
        let assignments: Vec<(String, Bytes)> = joined
            .members
            .iter()
            .map(|(id, _, _)| {
                let a = format!(
                    "{}@{}:{}",
                    self.name(id),
                    joined.generation,
                    self.rng.0 % 97
                );
                (id.clone(), Bytes::from(a))
            })
            .collect();
        // The first leader SyncGroup of a generation settles it; one sent
        // again (the answer was lost) gets the settled assignment. One for
        // a generation the group is not in settles nothing (after a crash
        // the same generation number comes again, with new assignments).
        let settles = self.coord.groups.borrow().get(&group).is_some_and(|g| {
            g.generation == joined.generation
                && g.state == GroupState::CompletingRebalance
                && g.leader.as_deref() == Some(client.member_id.as_str())
        });
        if joined.leader == client.member_id && settles {
            let map = assignments.iter().cloned().collect();
            self.model
                .assigned
                .entry((group.clone(), joined.generation))
                .or_insert(map);
        }
        let slot: Slot<SyncResult> = Default::default();
        let coord = self.coord.clone();
        let out = slot.clone();
        let (id, inst, generation) = (
            client.member_id.clone(),
            client.instance.clone(),
            joined.generation,
        );
        self.note(format!(
            "{} sync gen {generation} ({} assignments)",
            client.name,
            assignments.len()
        ));
        let task = spawn_local(async move {
            let r = coord
                .sync(
                    group,
                    SyncParams {
                        member_id: id,
                        instance_id: inst,
                        generation,
                        protocol_type: Some("consumer".into()),
                        protocol_name: joined.protocol_name,
                        assignments,
                    },
                )
                .await;
            *out.borrow_mut() = Some(r);
        });
        self.clients[c].sync = Some((task, slot));
        self.report.syncs += 1;
        Ok(())
    }

    /// Take the answers that arrived, as the clients would.
    pub(super) fn collect(&mut self) -> Result<(), String> {
        for c in 0..self.clients.len() {
            let joined = self.clients[c]
                .join
                .as_ref()
                .and_then(|(_, s)| s.borrow_mut().take());
            if let Some(r) = joined {
                self.clients[c].join = None;
                if !r.member_id.is_empty() && r.error != ResponseError::UnknownMemberId.code() {
                    self.names
                        .insert(r.member_id.clone(), self.clients[c].name.clone());
                }
                let leader = self.name(&r.leader);
                let members: Vec<String> =
                    r.members.iter().map(|(id, _, _)| self.name(id)).collect();
                self.note(format!(
                    "{} joined: err {} gen {} leader {leader} members {members:?} skip {}",
                    self.clients[c].name, r.error, r.generation, r.skip_assignment
                ));
                let client = &mut self.clients[c];
                if r.error == 0 {
                    self.report.joins += 1;
                    client.member_id = r.member_id.clone();
                    client.generation = r.generation;
                    client.joined = Some(r);
                } else if r.error == ResponseError::MemberIdRequired.code() {
                    client.member_id = r.member_id.clone();
                    self.start_join(c);
                } else if r.error == ResponseError::UnknownMemberId.code()
                    || r.error == ResponseError::FencedInstanceId.code()
                {
                    client.member_id.clear();
                }
            }
            let synced = self.clients[c]
                .sync
                .as_ref()
                .and_then(|(_, s)| s.borrow_mut().take());
            if let Some(r) = synced {
                self.clients[c].sync = None;
                self.note(format!(
                    "{} synced: err {} assignment {:?}",
                    self.clients[c].name, r.error, r.assignment
                ));
                let client = &self.clients[c];
                if r.error == 0 {
                    let key = (client.group.clone(), client.generation);
                    if let Some(given) = self
                        .model
                        .assigned
                        .get(&key)
                        .and_then(|m| m.get(&client.member_id))
                    {
                        if *given != r.assignment {
                            return Err(format!(
                                "{}: SyncGroup gave {:?}, the leader assigned {given:?}",
                                client.name, r.assignment
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A heartbeat answered 0 must come from a current member.
    fn check_heartbeat(&self, c: usize, code: i16) -> Result<(), String> {
        if code != 0 {
            return Ok(());
        }
        let client = &self.clients[c];
        let groups = self.coord.groups.borrow();
        let ok = groups.get(&client.group).is_some_and(|g| {
            g.members.contains_key(&client.member_id)
                && g.generation == client.generation
                && matches!(
                    g.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                )
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: heartbeat answered 0 outside its generation",
                client.name
            ))
        }
    }

    pub(super) async fn commit(
        &mut self,
        group: &str,
        c: Option<usize>,
        stale: bool,
    ) -> Result<(), String> {
        let (member, inst, mut generation, who) = match c {
            Some(c) => {
                let cl = &self.clients[c];
                (
                    cl.member_id.clone(),
                    cl.instance.clone(),
                    cl.generation,
                    cl.name.clone(),
                )
            }
            None => (String::new(), None, -1, "admin".into()),
        };
        if stale {
            generation -= 1 + self.rng.below(2) as i32;
        }
        self.next_offset += 1 + self.rng.below(50) as i64;
        let (topic, partition, offset) = (
            format!("t{}", self.rng.below(2)),
            self.rng.below(3) as i32,
            self.next_offset,
        );
        let entry = CommitEntry {
            topic: topic.clone(),
            partition,
            offset,
            leader_epoch: 1,
            metadata: String::new(),
        };
        let code = self
            .coord
            .commit(group, &member, inst.as_deref(), generation, vec![entry])
            .await;
        self.note(format!(
            "{who} commit {group} {topic}-{partition}@{offset} gen {generation}: {code}"
        ));
        let key = (group.to_string(), topic, partition);
        self.model
            .sent
            .insert((key.0.clone(), key.1.clone(), partition, offset));
        if code == 0 {
            self.report.commits += 1;
            self.model.maybe.remove(&key);
            self.model.acked.insert(key, (offset, self.clock.now_ms()));
        } else {
            // Refused before the write, or the write failed: in the log
            // or not, either may be restored.
            self.model.maybe.entry(key).or_default().push(offset);
        }
        Ok(())
    }

    pub(super) async fn client_step(&mut self, c: usize) -> Result<(), String> {
        let busy = self.clients[c].join.is_some() || self.clients[c].sync.is_some();
        if self.clients[c].silent {
            if self.rng.chance(100) {
                // Back as a new process: a static member keeps its instance.
                let cl = &mut self.clients[c];
                cl.silent = false;
                cl.member_id.clear();
                cl.joined = None;
                cl.join = None;
                cl.sync = None;
                let name = cl.name.clone();
                self.note(format!("{name} restarts"));
                self.start_join(c);
            }
            return Ok(());
        }
        let roll = self.rng.below(100);
        let client_name = self.clients[c].name.clone();
        match roll {
            0..=3 => {
                // The process dies (its requests go with its connection).
                let cl = &mut self.clients[c];
                cl.silent = true;
                cl.join = None;
                cl.sync = None;
                self.note(format!("{client_name} goes silent"));
            }
            4..=7 if !self.clients[c].member_id.is_empty() => {
                let cl = &self.clients[c];
                let by_instance = cl.instance.is_some() && self.rng.chance(300);
                let who = if by_instance {
                    String::new()
                } else {
                    cl.member_id.clone()
                };
                let (group, inst) = (cl.group.clone(), cl.instance.clone());
                let codes = self.coord.leave(&group, vec![(who, inst)]).await;
                self.note(format!("{client_name} leaves: {codes:?}"));
                let cl = &mut self.clients[c];
                cl.member_id.clear();
                cl.joined = None;
                cl.join = None;
                cl.sync = None;
            }
            8..=12 if !busy && !self.clients[c].member_id.is_empty() => {
                let group = self.clients[c].group.clone();
                self.commit(&group, Some(c), true).await?;
            }
            13..=17 if !busy && !self.clients[c].member_id.is_empty() => {
                let cl = &self.clients[c];
                let generation = cl.generation - 1 - self.rng.below(3) as i32;
                let code = self.coord.heartbeat(
                    &cl.group,
                    &cl.member_id,
                    cl.instance.as_deref(),
                    generation,
                );
                self.note(format!(
                    "{client_name} stale heartbeat gen {generation}: {code}"
                ));
                // After a crash the group may be back at a generation
                // below the client's: then this one is current.
                let current = self
                    .coord
                    .groups
                    .borrow()
                    .get(&self.clients[c].group)
                    .map(|g| g.generation);
                if code == 0 && current != Some(generation) {
                    return Err(format!("{client_name}: a stale heartbeat was answered 0"));
                }
            }
            _ if busy => {}
            _ if self.clients[c].joined.is_some() => {
                let joined = self.clients[c].joined.take().expect("checked");
                self.start_sync(c, joined)?;
            }
            _ if self.clients[c].member_id.is_empty() => self.start_join(c),
            18..=45 => {
                let group = self.clients[c].group.clone();
                self.commit(&group, Some(c), false).await?;
            }
            _ => {
                let cl = &self.clients[c];
                let code = self.coord.heartbeat(
                    &cl.group,
                    &cl.member_id,
                    cl.instance.as_deref(),
                    cl.generation,
                );
                self.report.heartbeats += 1;
                self.note(format!(
                    "{client_name} heartbeat gen {}: {code}",
                    cl.generation
                ));
                self.check_heartbeat(c, code)?;
                if code == ResponseError::RebalanceInProgress.code()
                    || code == ResponseError::IllegalGeneration.code()
                {
                    self.start_join(c);
                } else if code == ResponseError::UnknownMemberId.code()
                    || code == ResponseError::FencedInstanceId.code()
                {
                    self.clients[c].member_id.clear();
                    self.start_join(c);
                }
            }
        }
        Ok(())
    }
}
