//! CreateAcls, DescribeAcls and DeleteAcls (KIP-140, KIP-290 prefixes).
//!
//! As Kafka: without an authorizer they answer SECURITY_DISABLED; Create and
//! Delete need ALTER on the cluster, Describe needs DESCRIBE on it; a
//! binding or filter that is not valid gets INVALID_REQUEST on its own, and
//! the valid ones in the same request still apply.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{AclBinding, AclFilter, Operation};
use crate::shard_state::ShardState;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";
const NOT_ALLOWED: &str = "Cluster authorization failed: ACL changes need ALTER on the cluster";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Why a request is refused as a whole, if it is.
fn refusal(state: &ShardState, ctx: &RequestContext, op: Operation) -> Option<(i16, &'static str)> {
    if !state.security.authorizer.enabled() {
        Some((ResponseError::SecurityDisabled.code(), NO_AUTHORIZER))
    } else if !ctx.cluster_allowed(state, op) {
        Some((
            ResponseError::ClusterAuthorizationFailed.code(),
            if op == Operation::Describe {
                "Cluster authorization failed: describing ACLs needs DESCRIBE on the cluster"
            } else {
                NOT_ALLOWED
            },
        ))
    } else {
        None
    }
}

pub async fn create_acls(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |code: i16, msg: Option<&str>| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(msg.map(sb))
    };
    if let Some((code, msg)) = refusal(state, ctx, Operation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| result(code, Some(msg)))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        state.security.authorizer.store.create(valid.clone()).await
    };
    if stored.is_ok() && !valid.is_empty() {
        tracing::info!(
            "{} created {} ACL(s) from {}: {valid:?}",
            ctx.principal,
            valid.len(),
            ctx.peer
        );
    }
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(e), _) => result(ResponseError::InvalidRequest.code(), Some(&e)),
            (Ok(_), Ok(())) => result(0, None),
            (Ok(_), Err(e)) => {
                tracing::error!("creating ACLs: {e}");
                result(
                    ResponseError::UnknownServerError.code(),
                    Some(&e.to_string()),
                )
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe_acls(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let error = |code: i16, msg: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(sb(msg)))
    };
    if let Some((code, msg)) = refusal(state, ctx, Operation::Describe) {
        return error(code, msg);
    }
    let filter = match AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return error(ResponseError::InvalidRequest.code(), &e),
    };
    let snap = state.security.authorizer.store.snapshot();
    // Bindings are sorted by resource first, so each resource's ACLs are
    // consecutive; the map keeps that order.
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in snap.bindings.iter().filter(|b| filter.matches(b)) {
        by_resource
            .entry((
                b.resource_type.code(),
                &b.resource_name,
                b.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(&b.principal))
                    .with_host(sb(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((kind, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(kind)
                .with_resource_name(sb(name))
                .with_pattern_type(pattern)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete_acls(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |code: i16, msg: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(sb(msg)))
    };
    if let Some((code, msg)) = refusal(state, ctx, Operation::Alter) {
        let results = req.filters.iter().map(|_| failed(code, msg)).collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    let outcome = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        state.security.authorizer.store.delete(valid).await
    };
    let mut removed = match &outcome {
        Ok(r) => r.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let total: usize = outcome.as_ref().map_or(0, |r| r.iter().map(Vec::len).sum());
    if total > 0 {
        tracing::info!("{} deleted {total} ACL(s) from {}", ctx.principal, ctx.peer);
    }
    let results = parsed
        .into_iter()
        .map(|p| match (p, &outcome) {
            (Err(e), _) => failed(ResponseError::InvalidRequest.code(), &e),
            (Ok(_), Err(e)) => {
                tracing::error!("deleting ACLs: {e}");
                failed(ResponseError::UnknownServerError.code(), &e.to_string())
            }
            (Ok(_), Ok(_)) => {
                let matching = removed
                    .next()
                    .expect("one result per valid filter")
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(sb(&b.resource_name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(sb(&b.principal))
                            .with_host(sb(&b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
