//! Admin requests through the handlers change what later requests see.

use super::*;

/// DescribeConfigs after an AlterConfigs sees the change, and the live log
/// is reconfigured; DeleteRecords beyond the high watermark is refused.
#[test]
fn admin_changes_take_effect() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        let state = new_state(&path).await;
        let call = |key: ApiKey, version: i16, req: RequestKind| {
            let state = state.clone();
            async move {
                let frame = request_frame(key, version, 1, &req);
                decode_reply(key, version, 1, handle_frame(&state, frame, peer()).await)
            }
        };
        let alter = |name: &str, op: i8, value: Option<&str>, validate_only: bool| {
            RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default()
                    .with_validate_only(validate_only)
                    .with_resources(vec![AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(TOPIC))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(s(name))
                            .with_config_operation(op)
                            .with_value(value.map(s))])]),
            )
        };
        let code = |r: ResponseKind| match r {
            ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
            other => panic!("{other:?}"),
        };
        let r = call(
            ApiKey::IncrementalAlterConfigs,
            1,
            alter("retention.ms", 0, Some("1234"), false),
        )
        .await;
        assert_eq!(code(r), 0);
        let log = state.partitions.log(TOPIC, 1).unwrap();
        assert_eq!(log.config().retention_ms, 1234, "live log reconfigured");
        let r = call(
            ApiKey::IncrementalAlterConfigs,
            1,
            alter("retention.ms", 0, Some("-7"), false),
        )
        .await;
        assert_eq!(code(r), ResponseError::InvalidConfig.code());
        let r = call(
            ApiKey::IncrementalAlterConfigs,
            1,
            alter("bogus.config", 0, Some("1"), false),
        )
        .await;
        assert_eq!(code(r), ResponseError::InvalidConfig.code());
        let r = call(
            ApiKey::IncrementalAlterConfigs,
            1,
            alter("retention.ms", 0, Some("99"), true),
        )
        .await;
        assert_eq!(code(r), 0);
        assert_eq!(
            log.config().retention_ms,
            1234,
            "validate_only changes nothing"
        );
        let r = call(
            ApiKey::IncrementalAlterConfigs,
            1,
            alter("retention.ms", 1, None, false),
        )
        .await;
        assert_eq!(code(r), 0);
        assert_eq!(
            log.config().retention_ms,
            BrokerConfig::default().log_retention_ms
        );

        let req = RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(tn(TOPIC))
                .with_partitions(vec![
                    DeleteRecordsPartition::default().with_partition_index(1).with_offset(5),
                    DeleteRecordsPartition::default().with_partition_index(9).with_offset(0),
                ]),
        ]));
        match call(ApiKey::DeleteRecords, 2, req).await {
            ResponseKind::DeleteRecords(r) => {
                let p = &r.topics[0].partitions;
                assert_eq!(p[0].error_code, ResponseError::OffsetOutOfRange.code());
                assert_eq!(
                    p[1].error_code,
                    ResponseError::UnknownTopicOrPartition.code()
                );
            }
            other => panic!("{other:?}"),
        }
        state.close_all().await;
    });
}
