//! Reading the public key formats `ImportKeyPair` accepts into raw key parts. This is input
//! from users, so every failure is an `InvalidFormat` saying what was wrong.

use base64::Engine as _;
use rsa::pkcs1::der::Decode as _;
use rsa::pkcs8::der::pem;
use rsa::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use ssh_key::public::KeyData;

use super::KeyError;

/// A public key's parts, before size checks.
pub(super) enum PublicKey {
    /// Big-endian modulus and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519([u8; 32]),
}

/// The longest material we look at: an 8192-bit RSA key in the most verbose format is under
/// 2 KiB; anything past 16 KiB is not a public key.
const MAX_MATERIAL_BYTES: usize = 16 * 1024;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

const RFC4716_BEGIN: &str = "---- BEGIN SSH2 PUBLIC KEY ----";
const RFC4716_END: &str = "---- END SSH2 PUBLIC KEY ----";

pub(super) fn parse(material: &[u8]) -> Result<PublicKey, KeyError> {
    if material.len() > MAX_MATERIAL_BYTES {
        return Err(KeyError::invalid(format!("{} bytes is too long for a public key", material.len())));
    }
    let text = std::str::from_utf8(material).map_err(|_| KeyError::invalid("not text"))?.trim();
    if text.starts_with(RFC4716_BEGIN) {
        rfc4716(text)
    } else if text.starts_with("-----BEGIN ") {
        pem_key(text)
    } else {
        openssh(text)
    }
}

/// `ssh-rsa AAAA... comment`.
fn openssh(text: &str) -> Result<PublicKey, KeyError> {
    if text.lines().count() > 1 {
        return Err(KeyError::invalid("more than one line; give a single public key"));
    }
    let key = ssh_key::PublicKey::from_openssh(text).map_err(|e| KeyError::invalid(format!("not an OpenSSH public key line: {e}")))?;
    from_key_data(key.key_data())
}

/// RFC 4716: header lines (`Comment: ...`, continued by a trailing `\`), then base64.
fn rfc4716(text: &str) -> Result<PublicKey, KeyError> {
    let mut lines = text.lines().map(str::trim);
    lines.next(); // the BEGIN line
    let mut body = String::new();
    let mut continued = false;
    let mut ended = false;
    for line in lines {
        if line == RFC4716_END {
            ended = true;
            break;
        }
        if continued || line.contains(':') {
            continued = line.ends_with('\\');
            continue;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(KeyError::invalid(format!("no '{RFC4716_END}' line")));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .map_err(|e| KeyError::invalid(format!("RFC 4716 body is not base64: {e}")))?;
    let key =
        ssh_key::PublicKey::from_bytes(&blob).map_err(|e| KeyError::invalid(format!("RFC 4716 body is not an SSH public key: {e}")))?;
    from_key_data(key.key_data())
}

/// PEM `PUBLIC KEY` (SubjectPublicKeyInfo, as `openssl pkey -pubout` or
/// `ssh-keygen -e -m PKCS8` write it) or `RSA PUBLIC KEY` (PKCS#1).
fn pem_key(text: &str) -> Result<PublicKey, KeyError> {
    let label = pem::decode_label(text.as_bytes()).map_err(|e| KeyError::invalid(format!("bad PEM: {e}")))?;
    if label.contains("PRIVATE KEY") {
        return Err(KeyError::invalid("this is a private key; import the public key"));
    }
    let (label, der) = pem::decode_vec(text.as_bytes()).map_err(|e| KeyError::invalid(format!("bad PEM: {e}")))?;
    match label {
        "PUBLIC KEY" => {
            let spki = SubjectPublicKeyInfoRef::from_der(&der).map_err(|e| KeyError::invalid(format!("bad SubjectPublicKeyInfo: {e}")))?;
            let key_bytes =
                spki.subject_public_key.as_bytes().ok_or_else(|| KeyError::invalid("public key bit string is not whole bytes"))?;
            match spki.algorithm.oid {
                RSA_ENCRYPTION => pkcs1(key_bytes),
                ED25519 => {
                    key_bytes.try_into().map(PublicKey::Ed25519).map_err(|_| KeyError::invalid("ED25519 public key is not 32 bytes"))
                }
                oid => Err(unsupported(&format!("algorithm {oid}"))),
            }
        }
        "RSA PUBLIC KEY" => pkcs1(&der),
        other => Err(unsupported(&format!("PEM label '{other}'"))),
    }
}

fn pkcs1(der: &[u8]) -> Result<PublicKey, KeyError> {
    let key = rsa::pkcs1::RsaPublicKey::from_der(der).map_err(|e| KeyError::invalid(format!("bad PKCS#1 RSA public key: {e}")))?;
    Ok(PublicKey::Rsa { n: key.modulus.as_bytes().to_vec(), e: key.public_exponent.as_bytes().to_vec() })
}

fn from_key_data(data: &KeyData) -> Result<PublicKey, KeyError> {
    match data {
        KeyData::Rsa(rsa) => {
            let positive =
                |m: &ssh_key::Mpint| m.as_positive_bytes().map(<[u8]>::to_vec).ok_or_else(|| KeyError::invalid("negative RSA parameter"));
            Ok(PublicKey::Rsa { n: positive(&rsa.n)?, e: positive(&rsa.e)? })
        }
        KeyData::Ed25519(key) => Ok(PublicKey::Ed25519(key.0)),
        other => Err(unsupported(other.algorithm().as_str())),
    }
}

fn unsupported(what: &str) -> KeyError {
    KeyError::invalid(format!("unsupported key type ({what}); EC2 accepts RSA and ED25519 keys"))
}
