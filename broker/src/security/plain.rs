//! SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`.
//!
//! Passwords are checked against the SCRAM credential store by re-deriving
//! the stored key from the candidate password with the stored salt and
//! iteration count, so the broker never keeps a plaintext password. PLAIN
//! should only be enabled on SASL_SSL listeners, as in Kafka.

use super::scram::{fake_credential, AuthError, ScramCredential, ScramMechanism};

/// The SASL mechanism name for SaslHandshake.
pub const MECHANISM: &str = "PLAIN";
/// RFC 4616 limits each field to 255 octets; a little slack for the NULs.
const MAX_MESSAGE_LEN: usize = 3 * 255 + 2;

fn malformed(detail: &str) -> AuthError {
    AuthError::Malformed {
        mechanism: "PLAIN",
        detail: detail.into(),
    }
}

/// The parsed fields of a PLAIN message.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    pub authzid: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

pub fn parse(msg: &[u8]) -> Result<PlainMessage<'_>, AuthError> {
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(malformed("message too long"));
    }
    let s = std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = s.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected authzid NUL authcid NUL passwd"));
    };
    if user.is_empty() {
        return Err(malformed("empty username"));
    }
    if password.is_empty() {
        return Err(malformed("empty password"));
    }
    Ok(PlainMessage {
        authzid,
        user,
        password,
    })
}

/// Authenticate one PLAIN message; returns the user name on success.
///
/// `lookup` returns any SCRAM credential of the user (SHA-256 is cheapest).
/// `secret` is the fake-salt secret: an unknown user still costs one PBKDF2
/// run, so response time does not reveal whether the user exists.
pub fn authenticate(
    msg: &[u8],
    secret: &[u8],
    lookup: impl Fn(&str) -> Option<ScramCredential>,
) -> Result<String, AuthError> {
    let m = parse(msg)?;
    if !m.authzid.is_empty() && m.authzid != m.user {
        return Err(AuthError::AuthzidMismatch {
            authzid: m.authzid.into(),
            user: m.user.into(),
        });
    }
    match lookup(m.user) {
        Some(cred) => {
            if cred.verify_password(m.password.as_bytes()) {
                Ok(m.user.to_string())
            } else {
                Err(AuthError::BadCredentials(m.user.into()))
            }
        }
        None => {
            let fake = fake_credential(ScramMechanism::Sha256, secret, m.user);
            let _ = fake.verify_password(m.password.as_bytes());
            Err(AuthError::UnknownUser(m.user.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(u: &str) -> Option<ScramCredential> {
        thread_local! {
            static CRED: ScramCredential =
                ScramCredential::new(ScramMechanism::Sha256, "pencil", 4096).unwrap();
        }
        (u == "user").then(|| CRED.with(|c| c.clone()))
    }

    #[test]
    fn parses_fields() {
        assert_eq!(
            parse(b"admin\0user\0pw").unwrap(),
            PlainMessage {
                authzid: "admin",
                user: "user",
                password: "pw"
            }
        );
        assert_eq!(parse(b"\0user\0pw").unwrap().authzid, "");
        for bad in [
            &b""[..],
            b"user",
            b"\0user",
            b"\0\0pw",
            b"\0user\0",
            b"\0user\0pw\0extra",
            b"\0us\xffer\0pw",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&vec![b'a'; 2000]).is_err());
    }

    #[test]
    fn authenticates_against_scram_store() {
        assert_eq!(
            authenticate(b"\0user\0pencil", b"k", lookup).unwrap(),
            "user"
        );
        assert_eq!(
            authenticate(b"user\0user\0pencil", b"k", lookup).unwrap(),
            "user"
        );
        assert_eq!(
            authenticate(b"\0user\0pencil2", b"k", lookup),
            Err(AuthError::BadCredentials("user".into()))
        );
        assert_eq!(
            authenticate(b"\0bob\0pencil", b"k", lookup),
            Err(AuthError::UnknownUser("bob".into()))
        );
        assert!(matches!(
            authenticate(b"admin\0user\0pencil", b"k", lookup),
            Err(AuthError::AuthzidMismatch { .. })
        ));
    }

    #[test]
    fn works_with_sha512_credentials() {
        let cred = ScramCredential::new(ScramMechanism::Sha512, "hunter2", 4096).unwrap();
        let l = |u: &str| (u == "bob").then(|| cred.clone());
        assert_eq!(authenticate(b"\0bob\0hunter2", b"k", l).unwrap(), "bob");
        assert!(authenticate(b"\0bob\0hunter3", b"k", l).is_err());
    }
}
