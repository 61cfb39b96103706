//! The CLI's side of the shared client (`shardline-client`): the TLS and
//! SASL settings every connection of this process uses, set once from the
//! command line, and `connect` to open a [`Client`] with them.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
pub use shardline_client::{check, error_name, sb, topic_name, Client};
use shardline_client::{tls, Options, SaslAuth};

const CLIENT_ID: &str = "shardline-cli";
/// Extra time allowed on top of a request's own server-side timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

static OPTIONS: OnceLock<Options> = OnceLock::new();

/// Use TLS (when `tls` is given) and SASL (when `sasl` is) for every
/// connection of this process.
pub fn configure(tls: Option<&tls::TlsFiles>, sasl: Option<SaslAuth>) -> Result<()> {
    let mut opts = Options::new(CLIENT_ID);
    opts.io_timeout = IO_TIMEOUT;
    opts.tls = tls.map(tls::client_config).transpose()?;
    opts.sasl = sasl;
    let _ = OPTIONS.set(opts);
    Ok(())
}

/// Connect to the first reachable address of `bootstrap`.
pub fn connect(bootstrap: &str) -> Result<Client> {
    let opts = OPTIONS.get_or_init(|| {
        let mut opts = Options::new(CLIENT_ID);
        opts.io_timeout = IO_TIMEOUT;
        opts
    });
    Client::connect(bootstrap, opts)
}
