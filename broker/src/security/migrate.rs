//! Moving a broker's own security files into the metadata log.
//!
//! Before the cluster's metadata log held them, each broker kept its ACLs,
//! SCRAM credentials and client quotas in `DATA_DIR/acls.json`,
//! `credentials.json` and `quotas.json`. At start, before serving clients,
//! whatever of those files is present is proposed as one
//! [`SecurityCommand::Import`] (the log keeps what it already has and adds
//! the rest) and, once that is committed, each file is renamed
//! `*.migrated`, so it is imported once and kept for reference. A file
//! that does not parse stops the broker with its path, as before: starting
//! without its DENY ACLs or its quotas would open up what they closed.
//!
//! The same command gives the cluster its fake-salt secret (see
//! [`super::credentials::Snapshot::secret`]) the first time any broker
//! starts: the one from a credentials file, or fresh random bytes.

use std::path::Path;

use anyhow::Context;

use crate::metadata::security::{quota_changes_of, users_of, SecurityCommand};
use crate::metadata::{MetadataCommand, Source};

pub const ACL_FILE: &str = "acls.json";
pub const CREDENTIAL_FILE: &str = "credentials.json";
pub const QUOTA_FILE: &str = "quotas.json";

/// The bytes of `path`, `None` when there is no such file.
pub fn read_if_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Import what `data_dir` holds (see the module doc); returns how many
/// files were imported.
pub fn import_legacy_files(data_dir: &Path, source: &Source) -> anyhow::Result<usize> {
    let acl_path = data_dir.join(ACL_FILE);
    let cred_path = data_dir.join(CREDENTIAL_FILE);
    let quota_path = data_dir.join(QUOTA_FILE);
    let acls = crate::acl::store::read_legacy_file(&acl_path)?;
    let creds = super::credentials::read_legacy_file(&cred_path)?;
    let quotas = crate::quotas::store::read_legacy_file(&quota_path).map_err(anyhow::Error::msg)?;
    let files: Vec<&Path> = [
        acls.as_ref().map(|_| acl_path.as_path()),
        creds.as_ref().map(|_| cred_path.as_path()),
        quotas.as_ref().map(|_| quota_path.as_path()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let needs_secret = source.state().security.scram.secret.is_empty();
    if files.is_empty() && !needs_secret {
        return Ok(0);
    }
    let fake_salt_secret = match (&creds, needs_secret) {
        (_, false) => None,
        (Some((_, secret)), true) => Some(secret.clone()),
        (None, true) => Some(
            super::scram::random_bytes(32).map_err(|e| anyhow::anyhow!("fake-salt secret: {e}"))?,
        ),
    };
    let cmd = MetadataCommand::Security(SecurityCommand::Import {
        acls: acls.map(|a| a.into_iter().collect()).unwrap_or_default(),
        users: creds.as_ref().map(|(s, _)| users_of(s)).unwrap_or_default(),
        quotas: quotas.as_ref().map(quota_changes_of).unwrap_or_default(),
        fake_salt_secret,
    });
    source.execute_blocking(cmd).map_err(|e| {
        anyhow::anyhow!(
            "moving {} into the metadata log: {e}",
            if files.is_empty() {
                "the fake-salt secret".to_string()
            } else {
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    })?;
    for f in &files {
        let to = f.with_extension("json.migrated");
        std::fs::rename(f, &to)
            .with_context(|| format!("renaming {} to {}", f.display(), to.display()))?;
        tracing::info!(
            "{} is in the cluster's metadata log now; the file is kept as {}",
            f.display(),
            to.display()
        );
    }
    if !files.is_empty() {
        // A rename lost in a crash would import the file again, bringing
        // back what was deleted since.
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", data_dir.display()))?;
    }
    Ok(files.len())
}
