//! Raft messages between voters, as rkyv archives.
//!
//! raft-rs's messages are protobuf types, but they arrive here from the
//! network, and the protobuf 2 parser recurses without a bound on nested
//! unknown groups (RUSTSEC-2024-0437): a crafted frame on the controller
//! listener could overflow the stack. So they travel as mirror structs
//! archived with rkyv, whose validation (bytecheck) is iterative over a
//! flat buffer and checks every offset and length before anything is read.
//! Entry payloads stay opaque bytes: they are ours (JSON commands) or raft's
//! configuration changes, which a node only parses once committed.

use protobuf::ProtobufEnum;
use raft::prelude::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};
use rkyv::rancor;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Batch {
    messages: Vec<WireMessage>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireMessage {
    msg_type: i32,
    to: u64,
    from: u64,
    term: u64,
    log_term: u64,
    index: u64,
    entries: Vec<WireEntry>,
    commit: u64,
    commit_term: u64,
    snapshot: Option<WireSnapshot>,
    request_snapshot: u64,
    reject: bool,
    reject_hint: u64,
    context: Vec<u8>,
    priority: i64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireEntry {
    entry_type: i32,
    term: u64,
    index: u64,
    data: Vec<u8>,
    context: Vec<u8>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireSnapshot {
    data: Vec<u8>,
    index: u64,
    term: u64,
    voters: Vec<u64>,
    learners: Vec<u64>,
    voters_outgoing: Vec<u64>,
    learners_next: Vec<u64>,
    auto_leave: bool,
}

/// `messages` as one archive.
pub fn encode(messages: &[Message]) -> Vec<u8> {
    let batch = Batch {
        messages: messages.iter().map(to_wire).collect(),
    };
    rkyv::to_bytes::<rancor::Error>(&batch)
        .expect("archiving into memory cannot fail")
        .into_vec()
}

/// The messages archived in `bytes`, validated.
pub fn decode(bytes: &[u8]) -> Result<Vec<Message>, String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let batch = rkyv::access::<ArchivedBatch, rancor::Error>(&aligned)
        .map_err(|e| format!("a raft message batch is invalid: {e}"))?;
    batch.messages.iter().map(from_wire).collect()
}

fn to_wire(m: &Message) -> WireMessage {
    WireMessage {
        msg_type: m.get_msg_type().value(),
        to: m.to,
        from: m.from,
        term: m.term,
        log_term: m.log_term,
        index: m.index,
        entries: m
            .get_entries()
            .iter()
            .map(|e| WireEntry {
                entry_type: e.get_entry_type().value(),
                term: e.term,
                index: e.index,
                data: e.data.to_vec(),
                context: e.context.to_vec(),
            })
            .collect(),
        commit: m.commit,
        commit_term: m.commit_term,
        snapshot: m.snapshot.as_ref().map(|s| {
            let md = s.get_metadata();
            let cs = md.get_conf_state();
            WireSnapshot {
                data: s.data.to_vec(),
                index: md.index,
                term: md.term,
                voters: cs.voters.clone(),
                learners: cs.learners.clone(),
                voters_outgoing: cs.voters_outgoing.clone(),
                learners_next: cs.learners_next.clone(),
                auto_leave: cs.auto_leave,
            }
        }),
        request_snapshot: m.request_snapshot,
        reject: m.reject,
        reject_hint: m.reject_hint,
        context: m.context.to_vec(),
        priority: m.priority,
    }
}

fn from_wire(w: &ArchivedWireMessage) -> Result<Message, String> {
    let mut m = Message::default();
    m.set_msg_type(
        MessageType::from_i32(w.msg_type.to_native())
            .ok_or_else(|| format!("unknown raft message type {}", w.msg_type.to_native()))?,
    );
    m.to = w.to.to_native();
    m.from = w.from.to_native();
    m.term = w.term.to_native();
    m.log_term = w.log_term.to_native();
    m.index = w.index.to_native();
    let mut entries = Vec::with_capacity(w.entries.len());
    for e in w.entries.iter() {
        let mut entry = Entry::default();
        entry.set_entry_type(
            EntryType::from_i32(e.entry_type.to_native())
                .ok_or_else(|| format!("unknown raft entry type {}", e.entry_type.to_native()))?,
        );
        entry.term = e.term.to_native();
        entry.index = e.index.to_native();
        entry.data = e.data.as_slice().to_vec().into();
        entry.context = e.context.as_slice().to_vec().into();
        entries.push(entry);
    }
    m.set_entries(entries.into());
    m.commit = w.commit.to_native();
    m.commit_term = w.commit_term.to_native();
    if let Some(s) = w.snapshot.as_ref() {
        let ids = |v: &rkyv::vec::ArchivedVec<rkyv::rend::u64_le>| {
            v.iter().map(|x| x.to_native()).collect::<Vec<u64>>()
        };
        let cs = ConfState {
            voters: ids(&s.voters),
            learners: ids(&s.learners),
            voters_outgoing: ids(&s.voters_outgoing),
            learners_next: ids(&s.learners_next),
            auto_leave: s.auto_leave,
            ..Default::default()
        };
        let mut md = SnapshotMetadata::default();
        md.set_conf_state(cs);
        md.index = s.index.to_native();
        md.term = s.term.to_native();
        let mut snap = Snapshot::default();
        snap.set_metadata(md);
        snap.data = s.data.as_slice().to_vec().into();
        m.set_snapshot(snap);
    }
    m.request_snapshot = w.request_snapshot.to_native();
    m.reject = w.reject;
    m.reject_hint = w.reject_hint.to_native();
    m.context = w.context.as_slice().to_vec().into();
    m.priority = w.priority.to_native();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        m.index = 41;
        m.commit = 40;
        let e = Entry {
            term: 7,
            index: 42,
            data: b"{\"x\":1}".to_vec().into(),
            context: vec![1, 2, 3].into(),
            ..Default::default()
        };
        m.set_entries(vec![e].into());
        let mut snap = Snapshot {
            data: vec![9; 100].into(),
            ..Default::default()
        };
        snap.mut_metadata().index = 30;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snap.mut_metadata().mut_conf_state().learners = vec![4];
        m.set_snapshot(snap);
        m.context = b"ctx".to_vec().into();
        let mut hb = Message::default();
        hb.set_msg_type(MessageType::MsgHeartbeat);
        hb.reject = true;
        let bytes = encode(&[m.clone(), hb.clone()]);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, vec![m, hb]);
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode(b"not an archive at all, just some bytes").is_err());
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 8] ^= 0xff;
        let _ = decode(&flipped); // an error or other values, never a crash
    }
}
