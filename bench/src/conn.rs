//! The bench's connections: the shared blocking client (`shardline-client`)
//! with the bench's client id and timeout, pipelining requests with a
//! [`Pending`] record per request in flight.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use bytes::BytesMut;
use kafka_protocol::protocol::Request;
use shardline_client::Options;
pub use shardline_client::{decode_body, error_name, sb};

const CLIENT_ID: &str = "shardline-bench";
/// A broker that says nothing for this long is treated as dead.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub type Conn = shardline_client::Conn<Pending>;

/// What we remember about a request until its response arrives.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    pub intended_ns: u64,
    pub sent_ns: u64,
    /// (partition, records) carried by a Produce request.
    pub counts: Vec<(i32, u32)>,
}

fn options() -> &'static Options {
    static OPTS: OnceLock<Options> = OnceLock::new();
    OPTS.get_or_init(|| {
        let mut o = Options::new(CLIENT_ID);
        o.io_timeout = IO_TIMEOUT;
        o
    })
}

pub fn connect(addr: &str) -> Result<Conn> {
    Conn::connect(addr, options())
}

/// A connection to the first reachable address of the comma-separated list.
pub fn connect_bootstrap(bootstrap: &str) -> Result<Conn> {
    shardline_client::connect_bootstrap(bootstrap, options())
}

/// Length-prefixed request frame with the bench's client id; the
/// correlation id is stamped by `Conn::send_frame`.
pub fn encode_frame<R: Request>(req: &R, version: i16, out: &mut BytesMut) -> Result<()> {
    shardline_client::encode_frame(req, version, CLIENT_ID, out)
}
