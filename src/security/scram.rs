//! SCRAM (RFC 5802, with RFC 7677's SHA-256 and Kafka's SHA-512) as Kafka speaks it: the
//! stored credential (salt, iterations, StoredKey, ServerKey; never the password), the
//! server side of the exchange, and the client side the CLI and tests use.
//!
//! No I/O and no clock; the server's nonce is handed in, so an exchange replays exactly.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2};

/// Fewest PBKDF2 iterations accepted for a credential (Kafka's minimum).
pub const ITERATIONS_MIN: u32 = 4096;
/// Most PBKDF2 iterations accepted (Kafka's maximum): bounds the work one PLAIN login costs.
pub const ITERATIONS_MAX: u32 = 16384;
/// Longest client message accepted in an exchange.
pub const MESSAGE_MAX_BYTES: usize = 4096;

/// A SCRAM hash, with Kafka's mechanism name and its code in AlterUserScramCredentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (code 1).
    Sha256,
    /// SCRAM-SHA-512 (code 2).
    Sha512,
}

impl Mechanism {
    /// Both, in Kafka's order.
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's `ScramMechanism` code (AlterUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// The mechanism with Kafka's code `code`.
    pub fn from_code(code: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    /// Bytes of the hash's output.
    pub fn hash_len(self) -> usize {
        match self {
            Mechanism::Sha256 => 32,
            Mechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_algorithm(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        let rounds = std::num::NonZeroU32::new(iterations.max(1)).expect("at least 1");
        pbkdf2::derive(self.pbkdf2_algorithm(), rounds, salt, password, &mut out);
        out
    }
}

/// What the server keeps of a password for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl Credential {
    /// The credential of a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted(mechanism: Mechanism, salted: &[u8], salt: &[u8], iterations: u32) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        Credential {
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    /// The credential of a password.
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = mechanism.salted_password(password.as_bytes(), salt, iterations);
        Credential::from_salted(mechanism, &salted, salt, iterations)
    }

    /// Whether `password` is the one this credential was made from (PLAIN logins).
    pub fn verify_password(&self, mechanism: Mechanism, password: &str) -> bool {
        let derived = Credential::from_password(mechanism, password, &self.salt, self.iterations);
        constant_time_eq(&derived.stored_key, &self.stored_key)
    }

    /// Kafka's text form in `/config/users/<user>`:
    /// `salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>`.
    pub fn to_kafka_string(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key),
            self.iterations
        )
    }

    /// Parse Kafka's text form.
    pub fn from_kafka_string(text: &str) -> Result<Credential, String> {
        let mut salt = None;
        let mut stored_key = None;
        let mut server_key = None;
        let mut iterations = None;
        for part in text.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let bytes = || B64.decode(value).map_err(|e| format!("{key}: {e}"));
            match key {
                "salt" => salt = Some(bytes()?),
                "stored_key" => stored_key = Some(bytes()?),
                "server_key" => server_key = Some(bytes()?),
                "iterations" => {
                    iterations = Some(value.parse::<u32>().map_err(|e| format!("{key}: {e}"))?)
                }
                _ => {}
            }
        }
        match (salt, stored_key, server_key, iterations) {
            (Some(salt), Some(stored_key), Some(server_key), Some(iterations)) => Ok(Credential {
                salt,
                iterations,
                stored_key,
                server_key,
            }),
            _ => Err("salt, stored_key, server_key and iterations are all needed".into()),
        }
    }
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an exchange failed (the client is told only that authentication failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message that does not follow the grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The user is unknown or has no credential for this mechanism.
    #[error("unknown user or no credential for the mechanism")]
    UnknownUser,
    /// The proof does not match the stored key.
    #[error("invalid proof")]
    InvalidProof,
    /// The client asked for something bramble does not do (channel binding, an authzid
    /// other than the user, delegation tokens).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// The server side after the client's first message.
#[derive(Debug)]
pub struct ServerFirst {
    mechanism: Mechanism,
    /// The user the client named (already unescaped).
    pub user: String,
    credential: Option<Credential>,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ServerFirst {
    /// The mechanism of the exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The message to send back.
    pub fn message(&self) -> &[u8] {
        self.server_first.as_bytes()
    }
}

/// Parse the client's first message and answer it. `lookup` finds the user's credential;
/// an unknown user gets a made-up salt so the exchange looks the same until the proof
/// fails (no telling which users exist). `server_nonce` is fresh printable randomness.
pub fn server_first(
    mechanism: Mechanism,
    message: &[u8],
    server_nonce: &str,
    lookup: impl FnOnce(&str) -> Option<Credential>,
) -> Result<ServerFirst, ScramError> {
    if message.len() > MESSAGE_MAX_BYTES {
        return Err(ScramError::Malformed("message too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: cbind-flag "," [authzid] ","
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or("");
    let authzid = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("no client-first-bare"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => {
            return Err(ScramError::Unsupported("channel binding"));
        }
        _ => return Err(ScramError::Malformed("bad gs2 channel-binding flag")),
    }
    let mut user = None;
    let mut client_nonce = None;
    for (i, attr) in bare.split(',').enumerate() {
        match (i, attr.split_once('=')) {
            (0, Some(("n", name))) => user = Some(unescape_name(name)?),
            (1, Some(("r", nonce))) => client_nonce = Some(nonce),
            (0 | 1, _) => return Err(ScramError::Malformed("expected n= then r=")),
            (_, Some(("tokenauth", _))) => {
                return Err(ScramError::Unsupported("delegation tokens"));
            }
            // Other extensions are ignored, as Kafka does.
            _ => {}
        }
    }
    let user = user.ok_or(ScramError::Malformed("no user name"))?;
    let client_nonce = client_nonce.ok_or(ScramError::Malformed("no nonce"))?;
    if client_nonce.is_empty()
        || !client_nonce
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
    {
        return Err(ScramError::Malformed("bad nonce"));
    }
    if !authzid.is_empty() {
        let asked = authzid
            .strip_prefix("a=")
            .ok_or(ScramError::Malformed("bad authzid"))?;
        if unescape_name(asked)? != user {
            return Err(ScramError::Unsupported(
                "an authorization id other than the user",
            ));
        }
    }
    let credential = lookup(&user);
    let (salt, iterations) = match &credential {
        Some(c) => (c.salt.clone(), c.iterations),
        // A salt that stays the same for the same name, so probing twice shows nothing.
        None => (
            mechanism.hmac(server_nonce.as_bytes(), user.as_bytes())[..16].to_vec(),
            ITERATIONS_MIN,
        ),
    };
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
    Ok(ServerFirst {
        mechanism,
        user,
        credential,
        gs2_header: text[..text.len() - bare.len()].to_string(),
        client_first_bare: bare.to_string(),
        server_first,
        nonce,
    })
}

impl ServerFirst {
    /// Check the client's final message; on success the server-final message to send.
    pub fn finish(self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        if message.len() > MESSAGE_MAX_BYTES {
            return Err(ScramError::Malformed("message too long"));
        }
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected c="))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r="))?;
        let binding = B64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("bad channel binding"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::Malformed(
                "channel binding differs from the gs2 header",
            ));
        }
        // Kafka checks only that the nonce ends with the one it sent: librdkafka (2.0 at
        // least) repeats its client nonce in front. The proof covers what was sent either way.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::Malformed("nonce differs"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("bad proof"))?;
        let credential = self.credential.ok_or(ScramError::UnknownUser)?;
        let m = self.mechanism;
        if proof.len() != m.hash_len() {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// `saslname` unescaping: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The client side of an exchange (the CLI's login, and tests).
#[derive(Debug)]
pub struct Client {
    mechanism: Mechanism,
    password: String,
    client_first_bare: String,
    client_nonce: String,
}

impl Client {
    /// Start an exchange for `user`; `client_nonce` is fresh printable randomness.
    pub fn new(mechanism: Mechanism, user: &str, password: &str, client_nonce: &str) -> Client {
        Client {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={client_nonce}", escape_name(user)),
            client_nonce: client_nonce.to_string(),
        }
    }

    /// The first message.
    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answer the server's first message: the final message, and the server signature the
    /// server must prove it knows.
    pub fn final_message(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ScramError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => {
                    salt = Some(
                        B64.decode(v)
                            .map_err(|_| ScramError::Malformed("bad salt"))?,
                    )
                }
                Some(("i", v)) => {
                    iterations = Some(
                        v.parse::<u32>()
                            .map_err(|_| ScramError::Malformed("bad iterations"))?,
                    )
                }
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(ScramError::Malformed("server-first needs r, s and i"));
        };
        if !nonce.starts_with(&self.client_nonce) || iterations < ITERATIONS_MIN {
            return Err(ScramError::Malformed(
                "server nonce or iterations unacceptable",
            ));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        let server_signature = m.hmac(&server_key, auth_message.as_bytes());
        Ok((
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, end to end through the server side.
    #[test]
    fn rfc7677_example_is_accepted_and_signed() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = Credential::from_password(Mechanism::Sha256, "pencil", &salt, 4096);
        let first = server_first(
            Mechanism::Sha256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            |u| (u == "user").then(|| credential.clone()),
        )
        .unwrap();
        assert_eq!(
            first.message(),
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = first
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(last, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn client_and_server_agree_for_both_hashes() {
        for m in Mechanism::ALL {
            let credential = Credential::from_password(m, "s3cret", b"salty", 4096);
            let client = Client::new(m, "al,i=ce", "s3cret", "abc");
            let first = server_first(m, &client.first_message(), "xyz", |u| {
                (u == "al,i=ce").then(|| credential.clone())
            })
            .unwrap();
            let (last, expected) = client.final_message(first.message()).unwrap();
            assert_eq!(first.finish(&last).unwrap(), expected);
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike_at_the_proof() {
        let credential = Credential::from_password(Mechanism::Sha512, "right", b"salt", 4096);
        let client = Client::new(Mechanism::Sha512, "bob", "wrong", "n1");
        let first = server_first(Mechanism::Sha512, &client.first_message(), "n2", |_| {
            Some(credential.clone())
        })
        .unwrap();
        let (last, _) = client.final_message(first.message()).unwrap();
        assert_eq!(first.finish(&last), Err(ScramError::InvalidProof));

        let client = Client::new(Mechanism::Sha512, "nobody", "x", "n1");
        let first =
            server_first(Mechanism::Sha512, &client.first_message(), "n2", |_| None).unwrap();
        let (last, _) = client.final_message(first.message()).unwrap();
        assert_eq!(first.finish(&last), Err(ScramError::UnknownUser));
    }

    #[test]
    fn tampered_nonce_and_foreign_authzid_are_refused() {
        let credential = Credential::from_password(Mechanism::Sha256, "p", b"salt", 4096);
        let client = Client::new(Mechanism::Sha256, "u", "p", "n1");
        let first = server_first(Mechanism::Sha256, &client.first_message(), "n2", |_| {
            Some(credential.clone())
        })
        .unwrap();
        let (last, _) = client.final_message(first.message()).unwrap();
        let tampered = String::from_utf8(last).unwrap().replace("n1n2", "n1n3");
        assert!(first.finish(tampered.as_bytes()).is_err());
        assert!(matches!(
            server_first(Mechanism::Sha256, b"n,a=admin,n=u,r=x", "y", |_| None),
            Err(ScramError::Unsupported(_))
        ));
        assert!(server_first(Mechanism::Sha256, b"garbage", "y", |_| None).is_err());
    }

    #[test]
    fn kafka_text_form_round_trips_and_plain_passwords_verify() {
        let credential = Credential::from_password(Mechanism::Sha256, "pw", b"0123456789", 8192);
        let text = credential.to_kafka_string();
        assert!(text.starts_with("salt=") && text.ends_with("iterations=8192"));
        let back = Credential::from_kafka_string(&text).unwrap();
        assert_eq!(back, credential);
        assert!(back.verify_password(Mechanism::Sha256, "pw"));
        assert!(!back.verify_password(Mechanism::Sha256, "pW"));
    }
}
