//! A small blocking Kafka client: one `TcpStream` per broker, ApiVersions
//! negotiation, framed requests with correlation ids, and the lookups the
//! commands share (metadata, partition leaders, group coordinators).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
    TopicName,
};

use crate::security::scram::ScramMechanism;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;

const CLIENT_ID: &str = "shardline-cli";
/// Extra time allowed on top of a request's own server-side timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The request versions this client can encode and decode correctly, per API.
pub const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // v1+: v0 has no pattern type, so no PREFIXED ACLs.
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// SASL settings of this process's connections.
#[derive(Clone)]
pub struct SaslAuth {
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

static SASL: std::sync::OnceLock<SaslAuth> = std::sync::OnceLock::new();

pub fn set_sasl(auth: SaslAuth) {
    let _ = SASL.set(auth);
}

/// Highest version both we (`ours`) and the broker (`theirs`) support.
pub fn pick_version(ours: (i16, i16), theirs: Option<(i16, i16)>) -> Option<i16> {
    let (bmin, bmax) = theirs?;
    let max = ours.1.min(bmax);
    (max >= ours.0.max(bmin)).then_some(max)
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::new();
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// `Err` naming the Kafka error when `code` is non-zero.
pub fn check(code: i16, what: impl std::fmt::Display, message: Option<&StrBytes>) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(kafka_error(code, what, message))
}

pub fn kafka_error(
    code: i16,
    what: impl std::fmt::Display,
    message: Option<&StrBytes>,
) -> anyhow::Error {
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => anyhow!("{}: {what} ({m})", error_name(code)),
        None => anyhow!("{}: {what}", error_name(code)),
    }
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// One connection to one broker, with the versions it supports.
pub struct Conn {
    addr: String,
    stream: Box<dyn super::tls::Stream>,
    next_correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = super::tls::wrap(stream, host)?;
        let mut conn = Conn {
            addr: addr.to_string(),
            stream,
            next_correlation: 1,
            versions: HashMap::new(),
        };
        // v0 is understood by every broker and never needs the KIP-511 retry.
        let resp: ApiVersionsResponse = conn
            .send_raw(&ApiVersionsRequest::default(), 0, true)?
            .unwrap();
        check(resp.error_code, format!("ApiVersions to {addr}"), None)?;
        for k in resp.api_keys {
            conn.versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        if let Some(auth) = SASL.get() {
            conn.authenticate(auth)
                .with_context(|| format!("SASL {} as {:?} to {addr}", auth.mechanism, auth.user))?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then the mechanism's tokens in SaslAuthenticate.
    fn authenticate(&mut self, auth: &SaslAuth) -> Result<()> {
        let req = SaslHandshakeRequest::default().with_mechanism(sb(&auth.mechanism));
        let (resp, _) = self.send(&req)?;
        if resp.error_code != 0 {
            let offered: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(kafka_error(
                resp.error_code,
                format!(
                    "mechanism {} (broker offers {})",
                    auth.mechanism,
                    offered.join(", ")
                ),
                None,
            ));
        }
        let mut exchange = |token: Vec<u8>| -> Result<Vec<u8>> {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let (resp, _) = self.send(&req)?;
            check(
                resp.error_code,
                "SaslAuthenticate",
                resp.error_message.as_ref(),
            )?;
            Ok(resp.auth_bytes.to_vec())
        };
        match ScramMechanism::from_name(&auth.mechanism) {
            None => {
                exchange(super::sasl::plain_message(&auth.user, &auth.password))?;
            }
            Some(m) => {
                let mut c = super::sasl::ScramClient::new(m, &auth.user, &auth.password);
                let server_first = exchange(c.first_message().into_bytes())?;
                let fin = c.final_message(&String::from_utf8_lossy(&server_first))?;
                let server_final = exchange(fin.into_bytes())?;
                c.verify_server_final(&String::from_utf8_lossy(&server_final))?;
            }
        }
        Ok(())
    }

    /// The version to use for `key` on this broker, or an error saying why
    /// there is none.
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        let ours = IMPLEMENTED
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, a, b)| (*a, *b))
            .expect("API listed in IMPLEMENTED");
        let theirs = self.versions.get(&(key as i16)).copied();
        pick_version(ours, theirs).ok_or_else(|| match theirs {
            None => anyhow!(
                "UNSUPPORTED_VERSION: broker {} does not support {key:?}",
                self.addr
            ),
            Some((a, b)) => anyhow!(
                "UNSUPPORTED_VERSION: broker {} supports {key:?} v{a}-v{b}, this client v{}-v{}",
                self.addr,
                ours.0,
                ours.1
            ),
        })
    }

    /// Send `req` at the negotiated version and wait for its response.
    pub fn send<R: Request>(&mut self, req: &R) -> Result<(R::Response, i16)> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let version = self.version(key)?;
        let resp = self
            .send_raw(req, version, true)?
            .expect("response expected");
        Ok((resp, version))
    }

    /// Send without waiting for a response (Produce with acks=0).
    pub fn send_no_response<R: Request>(&mut self, req: &R) -> Result<()> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let version = self.version(key)?;
        self.send_raw(req, version, false).map(|_| ())
    }

    fn send_raw<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        expect: bool,
    ) -> Result<Option<R::Response>> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(sb(CLIENT_ID)));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)
            .with_context(|| format!("encoding api {} v{version}", R::KEY))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&buf)
            .with_context(|| format!("sending to {}", self.addr))?;
        if !expect {
            return Ok(None);
        }
        let mut len_buf = [0u8; 4];
        self.stream
            .read_exact(&mut len_buf)
            .with_context(|| format!("reading response from {} (connection closed?)", self.addr))?;
        let len = i32::from_be_bytes(len_buf);
        if !(4..=1 << 30).contains(&len) {
            bail!("bad response length {len} from {}", self.addr);
        }
        let mut body = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut body)
            .with_context(|| format!("reading response from {}", self.addr))?;
        let mut body = Bytes::from(body);
        let rh = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if rh.correlation_id != correlation_id {
            bail!(
                "correlation id mismatch from {}: sent {correlation_id}, got {}",
                self.addr,
                rh.correlation_id
            );
        }
        let resp = R::Response::decode(&mut body, version)
            .with_context(|| format!("decoding api {} v{version} response", R::KEY))?;
        if body.has_remaining() {
            tracing::debug!("{} trailing bytes in response", body.remaining());
        }
        Ok(Some(resp))
    }
}

/// The bootstrap connection plus lazily opened connections to other brokers.
pub struct Client {
    bootstrap: Conn,
    brokers: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
    /// Group -> coordinator node, from FindCoordinator.
    coordinators: HashMap<String, i32>,
    pub controller: i32,
}

impl Client {
    pub fn connect(bootstrap: &str) -> Result<Client> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match Conn::connect(addr) {
                Ok(conn) => {
                    return Ok(Client {
                        bootstrap: conn,
                        brokers: HashMap::new(),
                        conns: HashMap::new(),
                        coordinators: HashMap::new(),
                        controller: -1,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no bootstrap address given")))
    }

    /// Metadata for `topics` (all topics when `None`), never auto-creating.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let version = self.bootstrap.version(ApiKey::Metadata)?;
        let req = MetadataRequest::default()
            // Only v4+ can ask not to auto-create (and rejects the field below).
            .with_allow_auto_topic_creation(version < 4)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }));
        let (resp, _) = self.bootstrap.send(&req)?;
        for b in &resp.brokers {
            self.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        self.controller = resp.controller_id.0;
        Ok(resp)
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.keys().copied().collect();
        ids.sort();
        ids
    }

    /// Connection to broker `node` (the bootstrap one if it has that address
    /// or the node is unknown).
    pub fn conn(&mut self, node: i32) -> Result<&mut Conn> {
        let Some(addr) = self.brokers.get(&node).cloned() else {
            return Ok(&mut self.bootstrap);
        };
        if addr == self.bootstrap.addr {
            return Ok(&mut self.bootstrap);
        }
        match self.conns.entry(node) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let conn = Conn::connect(&addr).with_context(|| format!("broker {node}"))?;
                Ok(v.insert(conn))
            }
        }
    }

    /// Connection to the controller for admin requests (any broker forwards
    /// them in KRaft clusters; the bootstrap broker when the id is unknown).
    pub fn admin_conn(&mut self) -> Result<&mut Conn> {
        if self.brokers.is_empty() {
            self.metadata(Some(&[]))?;
        }
        let controller = self.controller;
        self.conn(controller)
    }

    /// Connection to the coordinator of consumer group `group`.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Conn> {
        if self.brokers.is_empty() {
            self.metadata(Some(&[]))?;
        }
        let req = FindCoordinatorRequest::default()
            .with_key(sb(group))
            .with_key_type(0)
            .with_coordinator_keys(vec![sb(group)]);
        let version = self.bootstrap.version(ApiKey::FindCoordinator)?;
        let req = if version >= 4 {
            req.with_key(StrBytes::default())
        } else {
            req.with_coordinator_keys(vec![])
        };
        if let Some(node) = self.coordinators.get(group).copied() {
            return self.conn(node);
        }
        // A fresh cluster may answer COORDINATOR_NOT_AVAILABLE (or another
        // retriable error) while it sets up its offsets topic: retry a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let (node, host, port) = loop {
            let (resp, _) = self.bootstrap.send(&req)?;
            let (code, message, found) = if version >= 4 {
                let c = resp.coordinators.into_iter().next().ok_or_else(|| {
                    anyhow!("FindCoordinator returned no coordinator for {group}")
                })?;
                (
                    c.error_code,
                    c.error_message,
                    (c.node_id.0, c.host.to_string(), c.port),
                )
            } else {
                let found = (resp.node_id.0, resp.host.to_string(), resp.port);
                (resp.error_code, resp.error_message, found)
            };
            let retriable = ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
            if code == 0 || !retriable || std::time::Instant::now() >= deadline {
                check(
                    code,
                    format!("finding coordinator of group {group}"),
                    message.as_ref(),
                )?;
                break found;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        self.coordinators.insert(group.to_string(), node);
        self.brokers
            .entry(node)
            .or_insert_with(|| format!("{host}:{port}"));
        self.conn(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        assert_eq!(pick_version((3, 11), Some((0, 9))), Some(9));
        assert_eq!(pick_version((3, 11), Some((0, 17))), Some(11));
        assert_eq!(pick_version((3, 11), Some((0, 2))), None);
        assert_eq!(pick_version((3, 11), Some((12, 13))), None);
        assert_eq!(pick_version((3, 11), None), None);
    }

    #[test]
    fn error_names_are_kafka_style() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }
}
