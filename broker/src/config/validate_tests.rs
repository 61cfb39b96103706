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

#[test]
fn limits_are_checked() {
    let cfg =
        accepted("group_max_size = 3\nmax_pending_fetch_waits = 5\ncross_shard_queue_depth = 64");
    assert_eq!(
        (
            cfg.group_max_size,
            cfg.max_pending_fetch_waits,
            cfg.cross_shard_queue_depth
        ),
        (3, 5, 64)
    );
    refused("group_max_size = 0", "group_max_size");
    refused("group_max_size = 2147483648", "group_max_size");
    refused("max_pending_fetch_waits = 0", "max_pending_fetch_waits");
    refused("cross_shard_queue_depth = 8", "cross_shard_queue_depth");
    refused(
        "cross_shard_queue_depth = 1048577",
        "cross_shard_queue_depth",
    );
}

/// Every key has a flag that sets it as the file would.
#[test]
fn every_key_has_a_flag_that_sets_it_like_the_file() {
    use super::super::flags::flag_name;
    use super::super::SETTINGS;
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        keys: super::super::ConfigFlags,
    }
    // A value of the right type for each key, as a flag and as TOML.
    let sample = |key: &str| -> (&str, &str) {
        match key {
            "listen" | "metrics_listen" | "admin_listen" => ("127.0.0.1:9", "\"127.0.0.1:9\""),
            "listeners" => (
                "PLAINTEXT://127.0.0.1:1,X://127.0.0.1:2",
                "[\"PLAINTEXT://127.0.0.1:1\", \"X://127.0.0.1:2\"]",
            ),
            "advertised_listeners"
            | "ssl_enabled_protocols"
            | "sasl_enabled_mechanisms"
            | "super_users"
            | "process_roles"
            | "controller_quorum_voters"
            | "controller_listener_names"
            | "alert_webhook_allowed_hosts" => ("A,B", "[\"A\", \"B\"]"),
            "listener_security_protocol_map" | "listener_ssl_client_auth" => {
                ("X=SSL,Y=SASL_SSL", "{ X = \"SSL\", Y = \"SASL_SSL\" }")
            }
            "log_flush" => ("interval", "\"interval\""),
            "replica_selector" => ("leader", "\"leader\""),
            "authorizer_enabled" | "allow_everyone_if_no_acl_found" => ("true", "true"),
            "auto_create_topics_enable" | "pin_shards" | "auto_leader_rebalance_enable" => {
                ("false", "false")
            }
            "disk_free_min_percent" => ("2.5", "2.5"),
            "advertise"
            | "sasl_bootstrap_user"
            | "broker_rack"
            | "sasl_bootstrap_password"
            | "inter_broker_listener_name"
            | "sasl_mechanism_inter_broker_protocol"
            | "inter_broker_sasl_username"
            | "inter_broker_sasl_password"
            | "ssl_client_auth"
            | "log_cleanup_policy"
            | "data_dir"
            | "ssl_certificate_location"
            | "ssl_key_location"
            | "ssl_truststore_location"
            | "alert_webhook_truststore_location"
            | "iotune_file" => ("v", "\"v\""),
            _ => ("7", "7"),
        }
    };
    for s in SETTINGS {
        let (flag, toml) = sample(s.key);
        let cli = Cli::try_parse_from(["serve", &format!("--{}", flag_name(s.key)), flag])
            .unwrap_or_else(|e| panic!("--{}: {e}", flag_name(s.key)));
        let mut by_flag = BrokerConfig::default();
        cli.keys.apply(&mut by_flag).unwrap();
        let by_file = BrokerConfig::from_toml(&format!("{} = {toml}", s.key))
            .unwrap_or_else(|e| panic!("{}: {e}", s.key));
        assert_eq!(
            format!("{by_flag:?}"),
            format!("{by_file:?}"),
            "--{} {flag} and {} = {toml} differ",
            flag_name(s.key),
            s.key
        );
        assert_ne!(
            format!("{by_flag:?}"),
            format!("{:?}", BrokerConfig::default()),
            "--{} {flag} changed nothing",
            flag_name(s.key)
        );
    }
    // A flag's bad value names the flag.
    let cli = Cli::try_parse_from(["serve", "--log-retention-ms", "soon"]).unwrap();
    let err = cli.keys.apply(&mut BrokerConfig::default()).unwrap_err();
    assert!(err.to_string().contains("--log-retention-ms"), "{err}");
}

/// Kafka's own names of keys whose names differ point to ours.
#[test]
fn kafka_names_point_to_our_keys() {
    let err = BrokerConfig::from_toml("\"log.roll.ms\" = 5")
        .unwrap_err()
        .to_string();
    assert!(err.contains("is `log_segment_ms`"), "{err}");
    let err = BrokerConfig::from_toml("\"group.max.size\" = 5")
        .unwrap_err()
        .to_string();
    assert!(err.contains("is `group_max_size`"), "{err}");
}

/// A key's range is declared once, in table.rs, and the file and the flags
/// are held to it alike: too small, too large (for the range, and for the
/// type) and not a number are each refused with the key and the range.
#[test]
fn ranges_hold_for_the_file_and_the_flags_alike() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        keys: super::super::ConfigFlags,
    }
    let bound = "must be between 1 and 4096";
    let from_file = |toml: &str| -> String {
        match BrokerConfig::from_toml(toml).and_then(BrokerConfig::finish) {
            Ok(_) => panic!("{toml:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    };
    let from_flag = |flag: &str, value: &str| -> String {
        let cli = Cli::try_parse_from(["serve", &format!("{flag}={value}")]).unwrap();
        let mut cfg = BrokerConfig::default();
        match cli.keys.apply(&mut cfg).and_then(|()| cfg.finish()) {
            Ok(_) => panic!("{flag} {value} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    };
    for (toml, flag_value) in [("0", "0"), ("4097", "4097"), ("\"many\"", "many")] {
        let err = from_file(&format!(
            "shards = 1\nmax_in_flight_per_connection = {toml}"
        ));
        assert!(
            err.contains("max_in_flight_per_connection") && err.contains(bound),
            "{err}"
        );
        let err = from_flag("--max-in-flight-per-connection", flag_value);
        assert!(
            err.contains("max-in-flight-per-connection")
                || err.contains("max_in_flight_per_connection"),
            "{err}"
        );
        assert!(err.contains(bound), "{err}");
    }
    // Past the type's own range (u32), the declared range is given too.
    let err = from_file("max_connections = 5000000000");
    assert!(
        err.contains("max_connections") && err.contains("must be at least 1"),
        "{err}"
    );
    let err = from_file("shards = 1\nmax_connections = \"x\"");
    assert!(
        err.contains("(line 2)") && err.contains("must be at least 1"),
        "{err}"
    );
    let err = from_flag("--max-connections", "-1");
    assert!(
        err.contains("max_connections") && err.contains("must be at least 1"),
        "{err}"
    );
    // Optional keys are checked when set; floats too.
    let err = from_file("shards = 300");
    assert!(
        err.contains("shards = 300: must be between 1 and 256"),
        "{err}"
    );
    let err = from_flag("--disk-free-min-percent", "51");
    assert!(
        err.contains("disk_free_min_percent = 51: must be between 0 and 50"),
        "{err}"
    );
    // The edges of a range are accepted.
    assert_eq!(
        accepted("shards = 1\nmax_in_flight_per_connection = 4096").max_in_flight_per_connection,
        4096
    );
    assert_eq!(
        accepted("shards = 1\nmax_in_flight_per_connection = 1").max_in_flight_per_connection,
        1
    );
}

/// A file may give keys in their sections (README's groups), flat, or
/// both; a key given twice, or in another section, is refused.
#[test]
fn keys_may_be_given_in_their_sections() {
    let flat = accepted(
        "shards = 2\nlog_retention_ms = 5000\nmax_connections = 10\nlisten = \"127.0.0.1:9\"",
    );
    let sectioned = accepted(
        "[storage]\nshards = 2\nlog_retention_ms = 5000\n\n[limits]\nmax_connections = 10\n\n\
         [network]\nlisten = \"127.0.0.1:9\"\n",
    );
    assert_eq!(format!("{flat:?}"), format!("{sectioned:?}"));
    let mixed = accepted("shards = 2\nlog_retention_ms = 5000\nlisten = \"127.0.0.1:9\"\n[limits]\nmax_connections = 10");
    assert_eq!(format!("{flat:?}"), format!("{mixed:?}"));

    let err = |toml: &str| -> String {
        match BrokerConfig::from_toml(toml).and_then(BrokerConfig::finish) {
            Ok(_) => panic!("{toml:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    };
    let twice = err("max_connections = 5\n[limits]\nmax_connections = 10");
    assert!(
        twice.contains("`max_connections` is given twice"),
        "{twice}"
    );
    let elsewhere = err("[limits]\nlog_retention_ms = 5");
    assert!(
        elsewhere.contains("`log_retention_ms` belongs in [storage], not in [limits]"),
        "{elsewhere}"
    );
    let unknown = err("[limits]\nmax_conections = 5");
    assert!(
        unknown.contains("unknown key `max_conections` in [limits]")
            && unknown.contains("`max_connections`"),
        "{unknown}"
    );
    // Types and ranges are checked the same in a section, with the line.
    let typed = err("shards = 1\n[limits]\nmax_connections = \"x\"");
    assert!(
        typed.contains("max_connections") && typed.contains("(line 3)"),
        "{typed}"
    );
    let ranged = err("shards = 1\n[limits]\nmax_in_flight_per_connection = 0");
    assert!(ranged.contains("must be between 1 and 4096"), "{ranged}");
}
