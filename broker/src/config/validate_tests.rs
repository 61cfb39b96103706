use super::super::BrokerConfig;

/// `toml` (one or more keys) must be refused, and the error must name `key`.
fn refused(toml: &str, key: &str) {
    let cfg = BrokerConfig::from_toml(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
    match cfg.finish() {
        Ok(_) => panic!("{toml:?} was accepted"),
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(
                msg.contains(key),
                "{toml:?}: the error does not name {key}: {msg}"
            );
        }
    }
}

fn accepted(toml: &str) -> BrokerConfig {
    BrokerConfig::from_toml(toml)
        .and_then(BrokerConfig::finish)
        .unwrap_or_else(|e| panic!("{toml:?} was refused: {e:#}"))
}

#[test]
fn shards_unset_is_one_per_core_and_zero_is_refused() {
    assert_eq!(accepted("").shards, shard::runtime::available_cores());
    assert_eq!(accepted("shards = 3").shards, 3);
    refused("shards = 0", "shards");
    refused("shards = 257", "shards");
}

#[test]
fn log_settings_follow_the_topic_validators() {
    refused("log_retention_ms = -2", "log_retention_ms");
    assert_eq!(accepted("log_retention_ms = -1").log_retention_ms, -1);
    refused("log_retention_bytes = -2", "log_retention_bytes");
    // The offset index's positions are 32-bit: Kafka caps segment.bytes at Int.MaxValue.
    refused("log_segment_bytes = 2147483648", "log_segment_bytes");
    refused("log_segment_bytes = 8000000000", "log_segment_bytes");
    assert_eq!(
        accepted("log_segment_bytes = 2147483647").log_segment_bytes,
        2147483647
    );
    refused("log_segment_bytes = 1000", "log_segment_bytes");
    refused("log_segment_ms = 0", "log_segment_ms");
    refused(
        "log_index_interval_bytes = 4294967296",
        "log_index_interval_bytes",
    );
    refused("log_cleanup_policy = \"shred\"", "log_cleanup_policy");
    refused("message_max_bytes = 10", "message_max_bytes");
    refused("message_max_bytes = 2147483648", "message_max_bytes");
    refused("num_partitions = 0", "num_partitions");
    refused("num_partitions = 10001", "num_partitions");
}

#[test]
fn intervals_of_zero_that_would_spin_are_refused() {
    refused("log_flush_interval_ms = 0", "log_flush_interval_ms");
    refused("log_flush_interval_bytes = 0", "log_flush_interval_bytes");
    refused(
        "log_retention_check_interval_ms = 0",
        "log_retention_check_interval_ms",
    );
    refused("ssl_reload_check_ms = 0", "ssl_reload_check_ms");
    refused("ssl_handshake_timeout_ms = 0", "ssl_handshake_timeout_ms");
    refused("sasl_failure_window_ms = 0", "sasl_failure_window_ms");
    refused(
        "log_retention_check_interval_ms = 9223372036854775807",
        "log_retention_check_interval_ms",
    );
}

#[test]
fn sizes_and_counts_out_of_range_are_refused() {
    refused(
        "socket_request_max_bytes = 4294967296",
        "socket_request_max_bytes",
    );
    refused(
        "socket_request_max_bytes = 1000\nmessage_max_bytes = 2000",
        "socket_request_max_bytes",
    );
    refused(
        "max_in_flight_per_connection = 0",
        "max_in_flight_per_connection",
    );
    refused(
        "max_in_flight_per_connection = 100000",
        "max_in_flight_per_connection",
    );
    refused("io_memory_bytes = 1024", "io_memory_bytes");
    refused("node_id = -1", "node_id");
    refused("data_dir = \"\"", "data_dir");
    refused("log_write_chunk_bytes = 1000", "log_write_chunk_bytes");
    refused("log_write_queue_depth = 0", "log_write_queue_depth");
    refused(
        "log_group_commit_window_us = 1000000",
        "log_group_commit_window_us",
    );
}

#[test]
fn group_settings_are_checked() {
    refused(
        "group_initial_rebalance_delay_ms = -1",
        "group_initial_rebalance_delay_ms",
    );
    refused("offsets_retention_minutes = 0", "offsets_retention_minutes");
    refused(
        "group_min_session_timeout_ms = 0",
        "group_min_session_timeout_ms",
    );
    refused(
        "group_min_session_timeout_ms = 10\ngroup_max_session_timeout_ms = 5",
        "group_max_session_timeout_ms",
    );
    refused(
        "group_consumer_heartbeat_interval_ms = 0",
        "group_consumer_heartbeat_interval_ms",
    );
    refused(
        "group_consumer_session_timeout_ms = 100\ngroup_consumer_heartbeat_interval_ms = 100",
        "group_consumer_session_timeout_ms",
    );
}

#[test]
fn quota_and_security_settings_are_checked() {
    refused("quota_window_num = 1", "quota_window_num");
    refused("quota_window_size_seconds = 0", "quota_window_size_seconds");
    refused(
        "sasl_bootstrap_iterations = 100",
        "sasl_bootstrap_iterations",
    );
    refused("sasl_max_failures = 0", "sasl_max_failures");
    refused(
        "connections_max_reauth_ms = -1",
        "connections_max_reauth_ms",
    );
    refused(
        "sasl_enabled_mechanisms = [\"GSSAPI\"]",
        "sasl_enabled_mechanisms",
    );
    refused("super_users = [\"admin\"]", "super_users");
    refused("sasl_bootstrap_user = \"a\"", "sasl_bootstrap_password");
}

#[test]
fn wrong_types_name_the_key_and_line() {
    let err = BrokerConfig::from_toml("shards = 2\nlog_retention_ms = \"forever\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("log_retention_ms") && err.contains("line 2"),
        "{err}"
    );
    // A negative number for an unsigned key is a type error, named too.
    let err = BrokerConfig::from_toml("log_flush_interval_ms = -5")
        .unwrap_err()
        .to_string();
    assert!(err.contains("log_flush_interval_ms"), "{err}");
}

#[test]
fn the_defaults_are_valid() {
    let cfg = accepted("");
    assert_eq!(cfg.log_retention_ms, 259_200_000);
}
