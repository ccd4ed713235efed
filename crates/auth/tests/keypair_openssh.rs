//! Cross-checks `corral_auth::keypair` against the tools users check keys with: OpenSSH's
//! `ssh-keygen` must read the keys we create and derive the same public key, and `openssl` /
//! `ssh-keygen -l` must compute the fingerprints we report, by the commands AWS documents.
//! Keys made by `ssh-keygen` and `openssl` must import, in every format we accept.
//!
//! Skipped, with a message, where ssh-keygen or openssl is not installed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use corral_auth::keypair::{generate, import, ImportedKey, KeyError, KeyType};

fn tools_available() -> bool {
    match corral_exec::run_blocking("sh", &["-c", "command -v ssh-keygen && command -v openssl"]) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: the key pair cross-checks need ssh-keygen and openssl ({e})");
            false
        }
    }
}

/// Runs a shell command line in `dir` and returns its stdout.
fn sh(dir: &Path, command: &str) -> String {
    let line = format!("cd '{}' && {command}", dir.display());
    let out = corral_exec::run_blocking("sh", &["-c", &line]).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out.stdout).unwrap()
}

fn write_private(dir: &Path, name: &str, pem: &str) {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    // ssh-keygen refuses to read a private key others can read.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `type base64` of an OpenSSH public key line, dropping the comment.
fn without_comment(line: &str) -> String {
    line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The hex digest `openssl <digest> -c` prints after `= `.
fn openssl_digest(output: &str) -> String {
    output.trim().rsplit_once("= ").unwrap().1.to_string()
}

/// `ssh-keygen -l -E sha256` prints `SHA256:<unpadded base64>`; AWS shows it padded.
fn ssh_keygen_sha256(dir: &Path, pubfile: &str) -> String {
    let out = sh(dir, &format!("ssh-keygen -l -E sha256 -f {pubfile}"));
    let b64 = out.split_whitespace().nth(1).unwrap().strip_prefix("SHA256:").unwrap().to_string();
    format!("{b64}{}", "=".repeat((4 - b64.len() % 4) % 4))
}

#[test]
fn created_rsa_key_reads_back_and_fingerprints_like_aws() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = std::time::Instant::now();
    let key = generate(KeyType::Rsa).unwrap();
    eprintln!("generate(Rsa) took {:?} (debug test build)", start.elapsed());
    write_private(d, "key.pem", &key.private_key_pem);

    assert_eq!(without_comment(&sh(d, "ssh-keygen -y -f key.pem")), key.public_openssh);
    assert!(sh(d, "openssl rsa -in key.pem -noout -text").starts_with("Private-Key: (2048 bit"));
    // AWS: "openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c"
    let sha1 = sh(d, "openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c");
    assert_eq!(openssl_digest(&sha1), key.fingerprint);
}

#[test]
fn created_ed25519_key_reads_back_and_fingerprints_like_aws() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = generate(KeyType::Ed25519).unwrap();
    write_private(d, "key", &key.private_key_pem);

    let derived = sh(d, "ssh-keygen -y -f key");
    assert_eq!(without_comment(&derived), key.public_openssh);
    std::fs::write(d.join("key.pub"), derived).unwrap();
    assert_eq!(ssh_keygen_sha256(d, "key.pub"), key.fingerprint);
}

/// Imports the key in `k.pub` in every format ssh-keygen writes, expecting one result.
fn import_all_formats(d: &Path, formats: &[&str]) -> ImportedKey {
    let line = std::fs::read_to_string(d.join("k.pub")).unwrap();
    let imported = import(line.as_bytes()).unwrap();
    assert_eq!(imported.public_openssh, without_comment(&line));
    for format in formats {
        let converted = sh(d, &format!("ssh-keygen -e {format} -f k.pub"));
        let again = import(converted.as_bytes()).unwrap_or_else(|e| panic!("{format}: {e}\n{converted}"));
        assert_eq!(again, imported, "ssh-keygen -e {format}");
    }
    imported
}

#[test]
fn imported_rsa_keys_fingerprint_like_aws_in_every_format() {
    if !tools_available() {
        return;
    }
    for bits in [1024, 2048, 3072, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sh(d, &format!("ssh-keygen -q -t rsa -b {bits} -N '' -C 'me@laptop' -f k"));
        // RFC 4716, PEM SubjectPublicKeyInfo, PEM PKCS#1.
        let imported = import_all_formats(d, &["", "-m PKCS8", "-m PEM"]);
        assert_eq!(imported.key_type, KeyType::Rsa);

        let spki_md5 = sh(d, "ssh-keygen -e -m PKCS8 -f k.pub | openssl pkey -pubin -outform DER | openssl md5 -c");
        assert_eq!(openssl_digest(&spki_md5), imported.fingerprint, "{bits} bits");
        // The command AWS documents, from the private key.
        let aws_md5 = sh(d, "ssh-keygen -ef k -m PEM | openssl rsa -RSAPublicKey_in -outform DER | openssl md5 -c");
        assert_eq!(openssl_digest(&aws_md5), imported.fingerprint, "{bits} bits");
    }
}

#[test]
fn imported_ed25519_key_fingerprints_like_aws() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(d, "ssh-keygen -q -t ed25519 -N '' -C 'me@laptop' -f k");
    let imported = import_all_formats(d, &[""]);
    assert_eq!(imported.key_type, KeyType::Ed25519);
    assert_eq!(imported.fingerprint, ssh_keygen_sha256(d, "k.pub"));
}

#[test]
fn openssl_public_keys_import() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // RSA: the SPKI PEM from openssl and the OpenSSH line ssh-keygen derives are one key.
    sh(d, "openssl genrsa -out r.pem 2048 2>/dev/null && chmod 600 r.pem && openssl rsa -in r.pem -pubout -out r.pub.pem 2>/dev/null");
    let from_pem = import(&std::fs::read(d.join("r.pub.pem")).unwrap()).unwrap();
    assert_eq!(from_pem.public_openssh, without_comment(&sh(d, "ssh-keygen -y -f r.pem")));
    let md5 = sh(d, "openssl pkey -pubin -in r.pub.pem -outform DER | openssl md5 -c");
    assert_eq!(openssl_digest(&md5), from_pem.fingerprint);

    // ED25519 SPKI (ssh-keygen cannot convert these): the OpenSSH blob must end in the same
    // 32 raw key bytes that the DER does.
    sh(d, "openssl genpkey -algorithm ed25519 -out e.pem && openssl pkey -in e.pem -pubout -out e.pub.pem && openssl pkey -pubin -in e.pub.pem -outform DER -out e.pub.der");
    let imported = import(&std::fs::read(d.join("e.pub.pem")).unwrap()).unwrap();
    assert_eq!(imported.key_type, KeyType::Ed25519);
    let der = std::fs::read(d.join("e.pub.der")).unwrap();
    let b64 = imported.public_openssh.strip_prefix("ssh-ed25519 ").unwrap();
    let blob = base64_decode(b64);
    assert_eq!(&blob[blob.len() - 32..], &der[der.len() - 32..]);
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = corral_exec::run_blocking("sh", &["-c", &format!("printf %s '{s}' | base64 -d")]).unwrap();
    out.stdout
}

fn assert_invalid(material: &[u8], reason_contains: &str) {
    match import(material) {
        Err(KeyError::InvalidFormat { reason }) => {
            assert!(reason.contains(reason_contains), "{reason:?} should mention {reason_contains:?}")
        }
        other => panic!("{:?}: expected InvalidFormat, got {other:?}", String::from_utf8_lossy(material)),
    }
}

#[test]
fn invalid_material_is_refused() {
    assert_invalid(b"", "OpenSSH");
    assert_invalid(b"hello world", "OpenSSH");
    assert_invalid(b"ssh-rsa not*base64 me@laptop", "OpenSSH");
    assert_invalid(b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== me", "OpenSSH");
    assert_invalid(&[0xff, 0xfe, 0x00], "not text");
    assert_invalid(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "");
    assert_invalid(b"---- BEGIN SSH2 PUBLIC KEY ----\nAAAAC3NzaC1lZDI1NTE5\n", "END SSH2");
    assert_invalid(&vec![b'a'; 20_000], "too long");
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(d, "ssh-keygen -q -t ecdsa -N '' -f ec && ssh-keygen -q -t dsa -N '' -f dsa 2>/dev/null || true");
    assert_invalid(&std::fs::read(d.join("ec.pub")).unwrap(), "unsupported key type (ecdsa-sha2-nistp256)");
    if let Ok(dsa) = std::fs::read(d.join("dsa.pub")) {
        assert_invalid(&dsa, "unsupported key type (ssh-dss)");
    }
    sh(d, "openssl genrsa -out small.pem 768 2>/dev/null && openssl rsa -in small.pem -pubout -out small.pub.pem 2>/dev/null");
    assert_invalid(&std::fs::read(d.join("small.pub.pem")).unwrap(), "768 bits");
    // Someone pasting the private key instead of the public one.
    sh(d, "ssh-keygen -q -t ed25519 -N '' -f oops");
    assert_invalid(&std::fs::read(d.join("oops")).unwrap(), "private key");
}
