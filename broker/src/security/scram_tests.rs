//! Unit tests of `scram.rs` (a file of their own to keep the module short).

use super::*;

/// A minimal SCRAM client, enough to drive the server in tests.
pub(crate) struct TestClient {
    pub mechanism: ScramMechanism,
    pub user: String,
    pub password: String,
    pub nonce: String,
    bare: String,
    server_sig: Vec<u8>,
}

impl TestClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
        TestClient {
            mechanism,
            user: user.into(),
            password: password.into(),
            nonce: nonce.into(),
            bare: String::new(),
            server_sig: Vec::new(),
        }
    }

    pub fn first(&mut self) -> Vec<u8> {
        let user = self.user.replace('=', "=3D").replace(',', "=2C");
        self.bare = format!("n={user},r={}", self.nonce);
        format!("n,,{}", self.bare).into_bytes()
    }

    pub fn final_msg(&mut self, server_first: &[u8]) -> Vec<u8> {
        self.final_msg_with_nonce(server_first, "")
    }

    /// As `final_msg`, with `prefix` put before the nonce it echoes.
    pub fn final_msg_with_nonce(&mut self, server_first: &[u8], prefix: &str) -> Vec<u8> {
        let sf = std::str::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iters = 0;
        for a in sf.split(',') {
            match a.split_at(2) {
                ("r=", v) => nonce = v,
                ("s=", v) => salt = B64.decode(v).unwrap(),
                ("i=", v) => iters = v.parse().unwrap(),
                _ => {}
            }
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iters);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let without_proof = format!("c=biws,r={prefix}{nonce}");
        let auth = format!("{},{sf},{without_proof}", self.bare);
        let sig = m.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        self.server_sig = m.hmac(&m.hmac(&salted, b"Server Key"), auth.as_bytes());
        format!("{without_proof},p={}", B64.encode(proof)).into_bytes()
    }

    pub fn check_server_final(&self, msg: &[u8]) -> bool {
        msg == format!("v={}", B64.encode(&self.server_sig)).as_bytes()
    }
}

fn store(
    mech: ScramMechanism,
    user: &'static str,
    pw: &str,
) -> impl Fn(&str) -> Option<ScramCredential> {
    let cred = ScramCredential::new(mech, pw, 4096).unwrap();
    move |u: &str| (u == user).then(|| cred.clone())
}

#[test]
fn rfc7677_sha256_vector() {
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
    let cred =
        ScramCredential::from_salted_password(ScramMechanism::Sha256, salt, &salted, 4096).unwrap();
    let mut server = ScramServer::new(ScramMechanism::Sha256, move |u: &str| {
        (u == "user").then(|| cred.clone())
    })
    .with_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    let first = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
    assert_eq!(
        first,
        Step::Continue(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .to_vec()
        )
    );
    let done = server
        .step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        .unwrap();
    assert_eq!(
        done,
        Step::Done {
            response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            user: "user".into()
        }
    );
    assert!(server.is_complete());
    assert_eq!(
        server.step(b"anything"),
        Err(AuthError::InvalidState("finished"))
    );
}

fn run(
    server_mech: ScramMechanism,
    client: &mut TestClient,
    lookup_pw: &str,
) -> Result<Step, AuthError> {
    let mut server = ScramServer::new(server_mech, store(server_mech, "alice", lookup_pw));
    let Step::Continue(sf) = server.step(&client.first())? else {
        panic!("expected a challenge")
    };
    server.step(&client.final_msg(&sf))
}

#[test]
fn sha512_round_trip() {
    let mut c = TestClient::new(ScramMechanism::Sha512, "alice", "s3cret", "abcdefgh");
    match run(ScramMechanism::Sha512, &mut c, "s3cret").unwrap() {
        Step::Done { response, user } => {
            assert_eq!(user, "alice");
            assert!(c.check_server_final(&response));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_password_fails() {
    let mut c = TestClient::new(ScramMechanism::Sha256, "alice", "nope", "abc");
    let err = run(ScramMechanism::Sha256, &mut c, "s3cret").unwrap_err();
    assert_eq!(err, AuthError::BadCredentials("alice".into()));
    assert_eq!(err.client_message(), "Authentication failed");
}

#[test]
fn unknown_user_gets_stable_fake_challenge_then_fails() {
    let lookup = |_: &str| None;
    let challenge = |nonce: &str| {
        let mut s = ScramServer::new(ScramMechanism::Sha256, lookup)
            .with_secret(b"k")
            .with_nonce(nonce);
        match s.step(b"n,,n=mallory,r=xyz").unwrap() {
            Step::Continue(m) => (s, String::from_utf8(m).unwrap()),
            other => panic!("{other:?}"),
        }
    };
    let (_, a) = challenge("N");
    let (mut s, b) = challenge("N");
    assert_eq!(a, b, "fake salt must be deterministic");
    assert!(a.ends_with(",i=4096"));
    let salt = a.split(",s=").nth(1).unwrap().split(',').next().unwrap();
    assert_eq!(B64.decode(salt).unwrap().len(), SALT_LEN);
    let mut c = TestClient::new(ScramMechanism::Sha256, "mallory", "x", "xyz");
    c.first();
    let err = s.step(&c.final_msg(a.as_bytes())).unwrap_err();
    assert_eq!(err, AuthError::UnknownUser("mallory".into()));
}

#[test]
fn mechanism_mismatch_is_treated_as_unknown() {
    let mut c = TestClient::new(ScramMechanism::Sha512, "alice", "pw", "n1");
    let mut server = ScramServer::new(
        ScramMechanism::Sha512,
        store(ScramMechanism::Sha256, "alice", "pw"),
    );
    let Step::Continue(sf) = server.step(&c.first()).unwrap() else {
        panic!()
    };
    assert!(matches!(
        server.step(&c.final_msg(&sf)),
        Err(AuthError::UnknownUser(_))
    ));
}

#[test]
fn wrong_nonce_and_channel_binding_fail() {
    let mut c = TestClient::new(ScramMechanism::Sha256, "alice", "pw", "n1");
    let mut server = ScramServer::new(
        ScramMechanism::Sha256,
        store(ScramMechanism::Sha256, "alice", "pw"),
    );
    let Step::Continue(sf) = server.step(&c.first()).unwrap() else {
        panic!()
    };
    let good = String::from_utf8(c.final_msg(&sf)).unwrap();
    let bad_nonce = good.replacen(",r=n1", ",r=n2", 1);
    assert_eq!(
        server.step(bad_nonce.as_bytes()),
        Err(AuthError::NonceMismatch)
    );

    let mut server = ScramServer::new(
        ScramMechanism::Sha256,
        store(ScramMechanism::Sha256, "alice", "pw"),
    );
    let Step::Continue(sf) = server.step(&c.first()).unwrap() else {
        panic!()
    };
    let good = String::from_utf8(c.final_msg(&sf)).unwrap();
    let bad_cb = good.replacen("c=biws", "c=eSws", 1);
    assert_eq!(
        server.step(bad_cb.as_bytes()),
        Err(AuthError::ChannelBinding)
    );
}

#[test]
fn authzid_and_escapes() {
    let lookup = store(ScramMechanism::Sha256, "alice", "pw");
    let mut s = ScramServer::new(ScramMechanism::Sha256, &lookup);
    assert!(matches!(
        s.step(b"n,a=alice,n=alice,r=x"),
        Ok(Step::Continue(_))
    ));
    let mut s = ScramServer::new(ScramMechanism::Sha256, &lookup);
    assert!(matches!(
        s.step(b"n,a=bob,n=alice,r=x"),
        Err(AuthError::AuthzidMismatch { .. })
    ));
    assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert!(decode_saslname("a=41").is_err());
    assert!(decode_saslname("a=").is_err());
    assert!(decode_saslname("a=2").is_err());
}

#[test]
fn malformed_messages_are_errors() {
    let lookup = store(ScramMechanism::Sha256, "alice", "pw");
    let bad_first: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=alice,r=a",
        b"p=tls-unique,,n=alice,r=a",
        b"n,,m=ext,n=alice,r=a",
        b"n,,n=alice",
        b"n,,r=a,n=alice",
        b"n,,n=,r=a",
        b"n,,n=alice,r=",
        b"n,,n=alice,r=a b",
        b"n,,n=alice,r=a,tokenauth=true",
        b"n,,n=al\xffice,r=a",
        b"n,b,n=alice,r=a",
    ];
    for m in bad_first {
        let mut s = ScramServer::new(ScramMechanism::Sha256, &lookup);
        assert!(s.step(m).is_err(), "{:?}", String::from_utf8_lossy(m));
    }
    let bad_final: &[&[u8]] = &[
        b"",
        b"c=biws",
        b"c=biws,r=abc",
        b"r=abc,c=biws,p=AAAA",
        b"c=biws,r=NONCE,p=",
        b"c=biws,r=NONCE,p=!!!",
        b"c=biws,r=NONCE,p=AAAA",
        b"\xff\xfe",
    ];
    for m in bad_final {
        let mut s = ScramServer::new(ScramMechanism::Sha256, &lookup).with_nonce("S");
        s.step(b"n,,n=alice,r=C").unwrap();
        let m = String::from_utf8_lossy(m).replace("NONCE", "CS");
        assert!(s.step(m.as_bytes()).is_err(), "{m:?}");
    }
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic fuzz loop (xorshift) over both states.
    let lookup = store(ScramMechanism::Sha256, "alice", "pw");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"n,=ar cpvsi0123ABC+/\xff\x00";
    for _ in 0..3000 {
        let len = (next() % 40) as usize;
        let msg: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 3 == 0 {
                    r as u8
                } else {
                    alphabet[(r as usize / 3) % alphabet.len()]
                }
            })
            .collect();
        let mut s = ScramServer::new(ScramMechanism::Sha256, &lookup);
        let _ = s.step(&msg);
        let mut s = ScramServer::new(ScramMechanism::Sha256, &lookup).with_nonce("S");
        s.step(b"n,,n=alice,r=C").unwrap();
        let mut m = b"c=biws,r=CS,".to_vec();
        m.extend_from_slice(&msg);
        let _ = s.step(&m);
        let _ = s.step(&msg);
    }
}

#[test]
fn credential_validation() {
    use ScramMechanism::*;
    assert_eq!(
        ScramCredential::new(Sha256, "pw", 4095),
        Err(CredentialError::Iterations(4095))
    );
    assert_eq!(
        ScramCredential::new(Sha256, "pw", 16385),
        Err(CredentialError::Iterations(16385))
    );
    assert_eq!(
        ScramCredential::new(Sha256, "", 4096),
        Err(CredentialError::EmptyPassword)
    );
    assert_eq!(
        ScramCredential::from_salted_password(Sha512, vec![1], &[0; 32], 4096),
        Err(CredentialError::SaltedPasswordLength {
            expected: 64,
            got: 32
        })
    );
    assert_eq!(
        ScramCredential::from_salted_password(Sha512, vec![], &[0; 64], 4096),
        Err(CredentialError::EmptySalt)
    );
    let c = ScramCredential::new(Sha512, "pw", 4096).unwrap();
    assert!(c.verify_password(b"pw"));
    assert!(!c.verify_password(b"pW"));
    assert!(!format!("{c:?}").contains("stored_key"));
    assert_eq!(ScramMechanism::from_name("SCRAM-SHA-512"), Some(Sha512));
    assert_eq!(ScramMechanism::from_kafka_type(1), Some(Sha256));
    assert_eq!(ScramMechanism::from_kafka_type(0), None);
}

#[test]
fn librdkafka_doubled_client_nonce_is_accepted_but_nothing_looser() {
    // librdkafka < 2.6.1 sends r=<client nonce><full nonce>.
    for (prefix, ok) in [("n1", true), ("n2", false), ("n1n1", false), ("", true)] {
        let mut c = TestClient::new(ScramMechanism::Sha256, "alice", "pw", "n1");
        let mut server = ScramServer::new(
            ScramMechanism::Sha256,
            store(ScramMechanism::Sha256, "alice", "pw"),
        );
        let Step::Continue(sf) = server.step(&c.first()).unwrap() else {
            panic!()
        };
        let msg = c.final_msg_with_nonce(&sf, prefix);
        let out = server.step(&msg);
        assert_eq!(out.is_ok(), ok, "prefix {prefix:?}: {out:?}");
    }
}
