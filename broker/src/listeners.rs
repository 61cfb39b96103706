//! Kafka-style listeners: `NAME://host:port`, with a security protocol per
//! listener (the name itself when it is a protocol name, else from
//! `listener_security_protocol_map`), and the address each one advertises.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{anyhow, bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    SaslPlaintext,
    Ssl,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Self::Plaintext,
            "SASL_PLAINTEXT" => Self::SaslPlaintext,
            "SSL" => Self::Ssl,
            "SASL_SSL" => Self::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's id of the protocol (`SecurityProtocol.id`).
    pub fn kafka_id(self) -> i16 {
        match self {
            Self::Plaintext => 0,
            Self::Ssl => 1,
            Self::SaslPlaintext => 2,
            Self::SaslSsl => 3,
        }
    }

    /// Clients must authenticate with SASL before anything else.
    pub fn is_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The connection is wrapped in TLS (`security::tls_stream`).
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One resolved listener: what it binds, speaks and advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
}

impl Listener {
    /// Host and port given to clients of this listener in Metadata,
    /// FindCoordinator and DescribeCluster.
    pub fn advertised(&self) -> (String, i32) {
        (self.advertised_host.clone(), self.advertised_port)
    }

    /// The single PLAINTEXT listener of the `listen` / `advertise` keys.
    pub fn plaintext(bind: SocketAddr, advertise: Option<&str>) -> Listener {
        let (host, port) = match advertise {
            Some(adv) => match split_host_port(adv) {
                Some((h, p)) => (h, p),
                None => (adv.to_string(), bind.port() as i32),
            },
            None => (bind.ip().to_string(), bind.port() as i32),
        };
        Listener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind,
            advertised_host: host,
            advertised_port: port,
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{} ({}, advertised {}:{})",
            self.name, self.bind, self.protocol, self.advertised_host, self.advertised_port
        )
    }
}

/// `host:port`, `[v6]:port`; the host without brackets.
fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some((host.trim_matches(['[', ']']).to_string(), port as i32))
}

/// `NAME://host:port` -> (NAME upper-cased, host, port). An empty host means
/// all interfaces.
pub fn parse_endpoint(s: &str) -> Result<(String, String, u16)> {
    let (name, rest) = s
        .split_once("://")
        .ok_or_else(|| anyhow!("listener {s:?} is not NAME://host:port"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("listener {s:?}: name must be letters, digits and '_'");
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("listener {s:?} has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow!("listener {s:?}: bad port {port:?}"))?;
    Ok((
        name.to_ascii_uppercase(),
        host.trim_matches(['[', ']']).to_string(),
        port,
    ))
}

/// Resolve `listeners`, `advertised_listeners` and
/// `listener_security_protocol_map` as Kafka does.
pub fn resolve(
    listeners: &[String],
    advertised: &[String],
    protocol_map: &BTreeMap<String, String>,
) -> Result<Vec<Listener>> {
    let map: BTreeMap<String, SecurityProtocol> = protocol_map
        .iter()
        .map(|(k, v)| {
            SecurityProtocol::parse(v)
                .map(|p| (k.to_ascii_uppercase(), p))
                .ok_or_else(|| anyhow!("listener_security_protocol_map: {k} = {v:?} is not PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL"))
        })
        .collect::<Result<_>>()?;
    let mut adv: BTreeMap<String, (String, i32)> = BTreeMap::new();
    for a in advertised {
        let (name, host, port) = parse_endpoint(a).context("advertised_listeners")?;
        if adv.insert(name.clone(), (host, port as i32)).is_some() {
            bail!("advertised_listeners names {name} twice");
        }
    }
    let mut out: Vec<Listener> = Vec::new();
    for l in listeners {
        let (name, host, port) = parse_endpoint(l).context("listeners")?;
        let protocol = match map.get(&name) {
            Some(p) => *p,
            None => SecurityProtocol::parse(&name).ok_or_else(|| {
                anyhow!("listener {name} is not a security protocol name and is not in listener_security_protocol_map")
            })?,
        };
        let host_for_bind = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind = (host_for_bind, port)
            .to_socket_addrs()
            .with_context(|| format!("listener {l:?}: resolving {host_for_bind}"))?
            .next()
            .ok_or_else(|| anyhow!("listener {l:?}: {host_for_bind} resolves to nothing"))?;
        if out.iter().any(|o| o.name == name) {
            bail!("listeners names {name} twice");
        }
        if out.iter().any(|o| o.bind.port() == port && port != 0) {
            bail!("listeners: port {port} is used twice");
        }
        let (advertised_host, advertised_port) = match adv.remove(&name) {
            Some(a) => a,
            None => (bind.ip().to_string(), port as i32),
        };
        out.push(Listener {
            name,
            protocol,
            bind,
            advertised_host,
            advertised_port,
        });
    }
    if let Some(name) = adv.keys().next() {
        bail!("advertised_listeners names {name}, which is not in listeners");
    }
    if out.is_empty() {
        bail!("listeners is empty");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn protocol_names_and_named_listeners() {
        let map = BTreeMap::from([
            ("INTERNAL".to_string(), "SASL_PLAINTEXT".to_string()),
            ("client".to_string(), "plaintext".to_string()),
        ]);
        let ls = resolve(
            &strings(&[
                "PLAINTEXT://127.0.0.1:9092",
                "SASL_PLAINTEXT://127.0.0.1:9094",
                "INTERNAL://:9095",
                "client://[::1]:9096",
            ]),
            &strings(&["INTERNAL://broker.example:19095"]),
            &map,
        )
        .unwrap();
        assert_eq!(ls.len(), 4);
        assert_eq!(ls[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(ls[0].advertised(), ("127.0.0.1".into(), 9092));
        assert_eq!(ls[1].name, "SASL_PLAINTEXT");
        assert_eq!(ls[1].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(ls[2].name, "INTERNAL");
        assert_eq!(ls[2].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(
            ls[2].bind,
            "0.0.0.0:9095".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(ls[2].advertised(), ("broker.example".into(), 19095));
        assert_eq!(ls[3].name, "CLIENT");
        assert_eq!(ls[3].protocol, SecurityProtocol::Plaintext);
        assert_eq!(
            ls[3].bind,
            "[::1]:9096".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(ls[3].advertised(), ("::1".into(), 9096));
    }

    #[test]
    fn bad_listeners_are_refused() {
        let none = BTreeMap::new();
        for (ls, adv) in [
            (vec!["FOO://127.0.0.1:1"], vec![]),
            (vec!["127.0.0.1:9092"], vec![]),
            (vec!["PLAINTEXT://127.0.0.1"], vec![]),
            (vec!["PLAINTEXT://127.0.0.1:x"], vec![]),
            (
                vec!["PLAINTEXT://127.0.0.1:1", "PLAINTEXT://127.0.0.1:2"],
                vec![],
            ),
            (vec!["PLAINTEXT://127.0.0.1:1", "SSL://127.0.0.1:1"], vec![]),
            (vec!["PLAINTEXT://127.0.0.1:1"], vec!["SSL://h:1"]),
            (vec![], vec![]),
        ] {
            assert!(
                resolve(&strings(&ls), &strings(&adv), &none).is_err(),
                "{ls:?} {adv:?} should be refused"
            );
        }
        let bad_map = BTreeMap::from([("X".to_string(), "TLS".to_string())]);
        assert!(resolve(&strings(&["X://127.0.0.1:1"]), &[], &bad_map).is_err());
    }

    #[test]
    fn legacy_listen_and_advertise() {
        let l = Listener::plaintext("127.0.0.1:9092".parse().unwrap(), None);
        assert_eq!(l.advertised(), ("127.0.0.1".into(), 9092));
        let l = Listener::plaintext("0.0.0.0:9092".parse().unwrap(), Some("kafka.example:19092"));
        assert_eq!(l.advertised(), ("kafka.example".into(), 19092));
        let l = Listener::plaintext("0.0.0.0:9092".parse().unwrap(), Some("kafka.example"));
        assert_eq!(l.advertised(), ("kafka.example".into(), 9092));
    }
}
