//! A software WebAuthn authenticator, as a browser and a platform authenticator
//! together would answer `navigator.credentials.create` and `.get`: ES256 keys,
//! discoverable (resident) credentials, "none" attestation, and the JSON forms that
//! `@simplewebauthn/browser` sends. Its knobs make the refusals a server must give:
//! no user verification, another origin, a counter that goes back.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// The AAGUID this authenticator reports.
pub const AAGUID: [u8; 16] = *b"gatehouse-soft-1";

/// One discoverable credential.
#[derive(Clone)]
pub struct Credential {
    pub id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    key: SigningKey,
    pub counter: u32,
}

#[derive(Clone)]
pub struct Authenticator {
    /// The origin the "browser" reports in client data.
    pub origin: String,
    /// Set the UV flag (the user passed a PIN or biometric check).
    pub user_verified: bool,
    /// Raise the signature counter on each use; off, it stays 0 (as synced passkeys).
    pub counts: bool,
    /// Report the credential as synced (backup eligible and backed up).
    pub synced: bool,
    pub credentials: Vec<Credential>,
}

impl Authenticator {
    pub fn new(origin: &str) -> Authenticator {
        Authenticator {
            origin: origin.to_string(),
            user_verified: true,
            counts: false,
            synced: true,
            credentials: Vec::new(),
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut flags = UP;
        if self.user_verified {
            flags |= UV;
        }
        if self.synced {
            flags |= BE | BS;
        }
        if attested {
            flags |= AT;
        }
        flags
    }

    /// Answers creation options (the `publicKey` object) with a registration
    /// response in its JSON form, keeping the new credential.
    pub fn create(&mut self, options: &Value) -> Value {
        let rp_id = options["rp"]["id"].as_str().expect("rp.id").to_string();
        let user_handle = B64
            .decode(options["user"]["id"].as_str().expect("user.id"))
            .expect("user.id is base64url");
        let credential = Credential {
            id: random::<32>().to_vec(),
            user_handle,
            rp_id,
            key: random_key(),
            counter: 0,
        };
        let response = self.attest(options, &credential);
        self.credentials.push(credential);
        response
    }

    /// Registers credential `index` again, under these options (as an authenticator
    /// that ignores `excludeCredentials` would).
    pub fn create_again(&mut self, options: &Value, index: usize) -> Value {
        let credential = self.credentials[index].clone();
        self.attest(options, &credential)
    }

    fn attest(&self, options: &Value, credential: &Credential) -> Value {
        let challenge = options["challenge"].as_str().expect("challenge");
        let (key, id, rp_id) = (&credential.key, &credential.id, &credential.rp_id);
        let client_data = self.client_data("webauthn.create", challenge);

        let point = key.verifying_key().to_sec1_bytes();
        let cose = cbor_map(vec![
            (Cbor::Integer(1), Cbor::Integer(2)),
            (Cbor::Integer(3), Cbor::Integer(-7)),
            (Cbor::Integer(-1), Cbor::Integer(1)),
            (Cbor::Integer(-2), Cbor::Bytes(point[1..33].to_vec())),
            (Cbor::Integer(-3), Cbor::Bytes(point[33..65].to_vec())),
        ]);
        let mut auth_data = self.auth_data_head(rp_id, true, 0);
        auth_data.extend_from_slice(&AAGUID);
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(id);
        auth_data.extend_from_slice(&serde_cbor_2::to_vec(&cose).expect("CBOR"));
        let attestation = cbor_map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), cbor_map(Vec::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        let attestation = serde_cbor_2::to_vec(&attestation).expect("CBOR");
        json!({
            "id": B64.encode(id),
            "rawId": B64.encode(id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data.as_bytes()),
                "attestationObject": B64.encode(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// Answers request options with an assertion by the newest credential for the RP
    /// (or the one `allowCredentials` names).
    pub fn get(&mut self, options: &Value) -> Value {
        let rp_id = options["rpId"].as_str().expect("rpId").to_string();
        let allowed: Vec<Vec<u8>> = options["allowCredentials"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| B64.decode(c["id"].as_str()?).ok())
                    .collect()
            })
            .unwrap_or_default();
        let index = self
            .credentials
            .iter()
            .rposition(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .expect("a credential for this RP");
        self.assert_with(index, options["challenge"].as_str().expect("challenge"))
    }

    /// An assertion by credential `index` over `challenge` (base64url).
    pub fn assert_with(&mut self, index: usize, challenge: &str) -> Value {
        if self.counts {
            self.credentials[index].counter += 1;
        }
        let counter = self.credentials[index].counter;
        let rp_id = self.credentials[index].rp_id.clone();
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data_head(&rp_id, false, counter);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
        let credential = &self.credentials[index];
        let signature: Signature = credential.key.sign(&signed);
        json!({
            "id": B64.encode(&credential.id),
            "rawId": B64.encode(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data.as_bytes()),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": B64.encode(&credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    fn client_data(&self, kind: &str, challenge: &str) -> String {
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
    }

    fn auth_data_head(&self, rp_id: &str, attested: bool, counter: u32) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(self.flags(attested));
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }
}

fn cbor_map(entries: Vec<(Cbor, Cbor)>) -> Cbor {
    Cbor::Map(entries.into_iter().collect::<BTreeMap<_, _>>())
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

fn random_key() -> SigningKey {
    loop {
        if let Ok(key) = SigningKey::from_slice(&random::<32>()) {
            return key;
        }
    }
}
