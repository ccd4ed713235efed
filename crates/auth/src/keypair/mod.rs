//! EC2 key pair material: generating the keys `CreateKeyPair` hands out, and checking the
//! public keys `ImportKeyPair` receives, with the fingerprints AWS shows for each.
//!
//! AWS computes fingerprints four ways, and clients compare them against their own tools:
//!
//! | key                | fingerprint                                                          |
//! |--------------------|----------------------------------------------------------------------|
//! | created RSA        | SHA-1 of the DER PKCS#8 private key, colon-separated hex (59 chars)   |
//! | imported RSA       | MD5 of the DER SubjectPublicKeyInfo, colon-separated hex (47 chars)   |
//! | ED25519, either    | SHA-256 of the OpenSSH public key blob, base64 with `=` padding       |
//!
//! (`ssh-keygen -l` prints the ED25519 one as `SHA256:` and unpadded base64.) Created keys are
//! returned as AWS returns them for `KeyFormat=pem`: RSA as 2048-bit PKCS#1
//! (`BEGIN RSA PRIVATE KEY`), ED25519 in OpenSSH's format (`BEGIN OPENSSH PRIVATE KEY`).
//! The store keeps only the public half; the private key leaves through the API response.

mod import;

use base64::Engine as _;
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use sha1::Digest as _;
use ssh_key::public::{Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{Algorithm, Mpint};

/// Size of RSA keys `CreateKeyPair` makes: what AWS makes.
pub const RSA_GENERATED_BITS: usize = 2048;
/// Smallest RSA key `ImportKeyPair` takes: AWS documents 1024, 2048 and 4096 bits.
pub const RSA_MIN_IMPORT_BITS: usize = 1024;
/// Largest RSA key `ImportKeyPair` takes. AWS documents up to 4096; we also take the odd
/// 8192-bit key rather than surprise its owner, and go no further to bound parsing cost.
pub const RSA_MAX_IMPORT_BITS: usize = 8192;

/// The EC2 `KeyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    /// The value EC2 uses on the wire: `rsa` or `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// A key made by `CreateKeyPair`.
#[derive(Clone)]
pub struct GeneratedKey {
    /// PKCS#1 PEM for RSA, OpenSSH PEM for ED25519, `\n` line endings.
    pub private_key_pem: String,
    /// `ssh-rsa AAAA...` / `ssh-ed25519 AAAA...`, without a comment.
    pub public_openssh: String,
    pub fingerprint: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("private_key_pem", &"<redacted>")
            .field("public_openssh", &self.public_openssh)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// A public key accepted by `ImportKeyPair`, normalised to the OpenSSH line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedKey {
    /// `ssh-rsa AAAA...` / `ssh-ed25519 AAAA...`, without a comment.
    pub public_openssh: String,
    pub key_type: KeyType,
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The material is not a public key we accept. EC2 answers `InvalidKey.Format`.
    #[error("key is not in valid OpenSSH public key format: {reason}")]
    InvalidFormat { reason: String },
    /// Generating or encoding a new key failed (the OS random source, most likely).
    #[error("could not generate a new {} key", kind.as_str())]
    Generate {
        kind: KeyType,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl KeyError {
    fn invalid(reason: impl Into<String>) -> Self {
        KeyError::InvalidFormat { reason: reason.into() }
    }
}

/// Makes a new key pair for `CreateKeyPair` (`KeyFormat=pem`).
pub fn generate(kind: KeyType) -> Result<GeneratedKey, KeyError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| KeyError::Generate { kind, source };
    match kind {
        KeyType::Rsa => {
            let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_GENERATED_BITS).map_err(|e| fail(e.into()))?;
            let pem = key.to_pkcs1_pem(LineEnding::LF).map_err(|e| fail(e.into()))?;
            let pkcs8 = key.to_pkcs8_der().map_err(|e| fail(e.into()))?;
            let public = rsa_key_data(&key.n().to_bytes_be(), &key.e().to_bytes_be()).map_err(|e| fail(e.into()))?;
            Ok(GeneratedKey {
                private_key_pem: pem.to_string(),
                public_openssh: openssh_line(public).map_err(|e| fail(e.into()))?,
                fingerprint: colon_hex(&sha1::Sha1::digest(pkcs8.as_bytes())),
            })
        }
        KeyType::Ed25519 => {
            let key = ssh_key::PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(|e| fail(e.into()))?;
            let pem = key.to_openssh(LineEnding::LF).map_err(|e| fail(e.into()))?;
            let public = key.public_key().key_data().clone();
            Ok(GeneratedKey {
                private_key_pem: pem.to_string(),
                fingerprint: sha256_fingerprint(&public).map_err(|e| fail(e.into()))?,
                public_openssh: openssh_line(public).map_err(|e| fail(e.into()))?,
            })
        }
    }
}

/// Checks the public key material of `ImportKeyPair` (already base64-decoded from the
/// request): an OpenSSH public key line (`ssh-rsa AAAA... comment`), a PEM
/// `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo) or `BEGIN RSA PUBLIC KEY` (PKCS#1), or an
/// RFC 4716 `BEGIN SSH2 PUBLIC KEY` block. RSA (1024 to 8192 bits) and ED25519 only.
pub fn import(public_key_material: &[u8]) -> Result<ImportedKey, KeyError> {
    match import::parse(public_key_material)? {
        import::PublicKey::Rsa { n, e } => {
            let key =
                rsa::RsaPublicKey::new_with_max_size(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from_bytes_be(&e), RSA_MAX_IMPORT_BITS)
                    .map_err(|err| KeyError::invalid(format!("not a usable RSA key: {err}")))?;
            let bits = key.n().bits();
            if bits < RSA_MIN_IMPORT_BITS {
                return Err(KeyError::invalid(format!("RSA key of {bits} bits is shorter than the {RSA_MIN_IMPORT_BITS} bits accepted")));
            }
            let spki = key.to_public_key_der().map_err(|err| KeyError::invalid(format!("cannot encode RSA key: {err}")))?;
            let data = rsa_key_data(&n, &e).map_err(|err| KeyError::invalid(err.to_string()))?;
            Ok(ImportedKey {
                public_openssh: openssh_line(data).map_err(|err| KeyError::invalid(err.to_string()))?,
                key_type: KeyType::Rsa,
                fingerprint: colon_hex(&md5::Md5::digest(spki.as_bytes())),
            })
        }
        import::PublicKey::Ed25519(bytes) => {
            let data = KeyData::Ed25519(Ed25519PublicKey(bytes));
            Ok(ImportedKey {
                fingerprint: sha256_fingerprint(&data).map_err(|err| KeyError::invalid(err.to_string()))?,
                public_openssh: openssh_line(data).map_err(|err| KeyError::invalid(err.to_string()))?,
                key_type: KeyType::Ed25519,
            })
        }
    }
}

fn rsa_key_data(n: &[u8], e: &[u8]) -> Result<KeyData, ssh_key::Error> {
    Ok(KeyData::Rsa(RsaPublicKey { e: Mpint::from_positive_bytes(e)?, n: Mpint::from_positive_bytes(n)? }))
}

fn openssh_line(data: KeyData) -> Result<String, ssh_key::Error> {
    ssh_key::PublicKey::new(data, "").to_openssh()
}

/// Base64 (padded) of the SHA-256 of the OpenSSH public key blob.
fn sha256_fingerprint(data: &KeyData) -> Result<String, ssh_key::Error> {
    let blob = ssh_key::PublicKey::new(data.clone(), "").to_bytes()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&blob)))
}

/// `1f:51:ae:...`: lowercase hex bytes separated by colons.
fn colon_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rsa_key_has_aws_shapes() {
        let start = std::time::Instant::now();
        let key = generate(KeyType::Rsa).unwrap();
        eprintln!("generate(Rsa) took {:?}", start.elapsed());
        assert!(key.private_key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(key.public_openssh.starts_with("ssh-rsa AAAA"));
        assert_eq!(key.fingerprint.len(), 59, "{}", key.fingerprint);
        assert!(!format!("{key:?}").contains("PRIVATE KEY"), "Debug must not print the key");
        // The public half, imported back, is the same key (with the import fingerprint).
        let imported = import(key.public_openssh.as_bytes()).unwrap();
        assert_eq!(imported.public_openssh, key.public_openssh);
        assert_eq!(imported.key_type, KeyType::Rsa);
        assert_eq!(imported.fingerprint.len(), 47, "{}", imported.fingerprint);
    }

    #[test]
    fn generated_ed25519_key_has_aws_shapes() {
        let key = generate(KeyType::Ed25519).unwrap();
        assert!(key.private_key_pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(key.public_openssh.starts_with("ssh-ed25519 AAAA"));
        assert_eq!(key.fingerprint.len(), 44);
        assert!(key.fingerprint.ends_with('='));
        let imported = import(key.public_openssh.as_bytes()).unwrap();
        assert_eq!(imported.fingerprint, key.fingerprint, "created and imported ED25519 agree");
        assert_eq!(imported.key_type, KeyType::Ed25519);
    }

    #[test]
    fn colon_hex_format() {
        assert_eq!(colon_hex(&[0x1f, 0x00, 0xab]), "1f:00:ab");
    }
}
