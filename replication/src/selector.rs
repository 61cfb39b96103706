//! KIP-392: which replica a consumer should read a partition from, decided
//! by the leader (Kafka's `RackAwareReplicaSelector`, fed as
//! `ReplicaManager.findPreferredReadReplica` feeds it).
//!
//! Kafka's rules, kept here:
//! - a client that names no rack, or whose rack holds the leader, reads
//!   from the leader;
//! - otherwise a follower in the client's rack, **in the ISR** (KAFKA-14372:
//!   an out-of-sync follower would keep its consumers behind for as long as
//!   it lags), on a live broker reachable on the client's listener, whose
//!   log holds the fetch offset; of several, the most caught up (largest
//!   log end, then the most recently caught up, then the largest id:
//!   `ReplicaView.comparator`);
//! - no such follower: the leader.
//!
//! Only a leader runs this (KAFKA-13778): a follower serves whoever reaches
//! it and never sends a consumer elsewhere.
//!
//! Pure, so every rule is tested without a cluster.

/// What the leader knows of one follower of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaView<'a> {
    pub id: i32,
    /// Its broker's `broker_rack`.
    pub rack: Option<&'a str>,
    /// In the committed ISR.
    pub in_sync: bool,
    /// Registered, unfenced, and with an endpoint on the client's listener
    /// (a client can only be sent to a broker it can reach).
    pub live: bool,
    /// Its log end as its last fetch told the leader (-1 before its first
    /// fetch of the leader epoch).
    pub log_end: i64,
    /// Milliseconds since it was last caught up with the leader.
    pub since_caught_up_ms: i64,
}

/// The follower `client_rack`'s consumer should fetch `fetch_offset` from,
/// or `None` for the leader. `leader_rack`: the leader's own rack;
/// `log_start`: the leader's log start (an offset below it is out of range
/// everywhere: the leader answers that itself).
pub fn preferred_read_replica(
    client_rack: &str,
    fetch_offset: i64,
    log_start: i64,
    leader_rack: Option<&str>,
    followers: &[ReplicaView<'_>],
) -> Option<i32> {
    if client_rack.is_empty() || leader_rack == Some(client_rack) || fetch_offset < log_start {
        return None;
    }
    followers
        .iter()
        .filter(|f| f.rack == Some(client_rack) && f.in_sync && f.live && f.log_end >= fetch_offset)
        .max_by_key(|f| (f.log_end, -f.since_caught_up_ms, f.id))
        .map(|f| f.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: i32, rack: &str) -> ReplicaView<'_> {
        ReplicaView {
            id,
            rack: Some(rack),
            in_sync: true,
            live: true,
            log_end: 100,
            since_caught_up_ms: 0,
        }
    }

    #[test]
    fn a_follower_in_the_clients_rack_is_preferred() {
        let followers = [view(2, "b"), view(3, "c")];
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &followers),
            Some(2)
        );
        assert_eq!(
            preferred_read_replica("c", 100, 0, Some("a"), &followers),
            Some(3),
            "a follower holding up to the fetch offset (its log end) serves it"
        );
        assert_eq!(
            preferred_read_replica("c", 50, 0, None, &followers),
            Some(3),
            "a leader with no rack is in no client's rack"
        );
    }

    #[test]
    fn the_leader_serves_a_client_with_no_rack_or_in_its_rack_or_in_no_replicas_rack() {
        let followers = [view(2, "b"), view(3, "c")];
        assert_eq!(
            preferred_read_replica("", 50, 0, Some("a"), &followers),
            None
        );
        assert_eq!(
            preferred_read_replica("a", 50, 0, Some("a"), &followers),
            None
        );
        assert_eq!(
            preferred_read_replica("z", 50, 0, Some("a"), &followers),
            None
        );
        // The leader shares the rack with a follower: still the leader.
        let followers = [view(2, "a")];
        assert_eq!(
            preferred_read_replica("a", 50, 0, Some("a"), &followers),
            None
        );
    }

    #[test]
    fn out_of_sync_fenced_or_unreachable_followers_are_never_chosen() {
        let mut lagging = view(2, "b");
        lagging.in_sync = false;
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[lagging]),
            None
        );
        let mut fenced = view(2, "b");
        fenced.live = false;
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[fenced]),
            None
        );
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[lagging, fenced, view(3, "b")]),
            Some(3)
        );
        let no_rack = ReplicaView {
            rack: None,
            ..view(2, "b")
        };
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[no_rack]),
            None
        );
    }

    #[test]
    fn a_follower_without_the_fetch_offset_is_not_chosen() {
        let f = view(2, "b"); // log end 100
        assert_eq!(preferred_read_replica("b", 101, 0, Some("a"), &[f]), None);
        let unknown = ReplicaView {
            log_end: -1,
            ..view(2, "b")
        };
        assert_eq!(
            preferred_read_replica("b", 0, 0, Some("a"), &[unknown]),
            None
        );
        // Below the log start: the leader answers OFFSET_OUT_OF_RANGE itself.
        assert_eq!(preferred_read_replica("b", 5, 10, Some("a"), &[f]), None);
    }

    #[test]
    fn of_several_the_most_caught_up_wins_then_the_most_recent_then_the_largest_id() {
        let behind = ReplicaView {
            log_end: 90,
            ..view(2, "b")
        };
        let ahead = view(3, "b");
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[ahead, behind]),
            Some(3)
        );
        let stale = ReplicaView {
            since_caught_up_ms: 500,
            ..view(4, "b")
        };
        let fresh = ReplicaView {
            since_caught_up_ms: 10,
            ..view(2, "b")
        };
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[stale, fresh]),
            Some(2)
        );
        assert_eq!(
            preferred_read_replica("b", 50, 0, Some("a"), &[view(2, "b"), view(5, "b")]),
            Some(5)
        );
    }
}
