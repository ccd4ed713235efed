"""Key pairs: AWS's fingerprint formats, private keys OpenSSH accepts, imports, filters, delete.

Fingerprints are recomputed here with OpenSSH and OpenSSL, the tools users check them with.
"""

import base64
import hashlib
import re
import shutil
import subprocess

import pytest

from support import KEY_PAIR_ID_RE, UNKNOWN_KEY_PAIR_ID, expect_error

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh-keygen") and shutil.which("openssl")), reason="needs ssh-keygen and openssl"
)

SHA1_COLON_RE = re.compile(r"^([0-9a-f]{2}:){19}[0-9a-f]{2}$")
MD5_COLON_RE = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
SHA256_B64_RE = re.compile(r"^[A-Za-z0-9+/]{43}=$")


def sh(cmd: str, **kw) -> bytes:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, **kw).stdout


def openssl_colon_digest(output: bytes) -> str:
    # "SHA1(stdin)= 2b:c1:..." / "(stdin)= 2b:c1:..." depending on the OpenSSL version.
    return output.decode().strip().split("= ")[-1].strip()


def write_private_key(tmp_path, material: str):
    path = tmp_path / "key.pem"
    path.write_text(material)
    path.chmod(0o600)
    return path


def public_key_of(private_key_path) -> str:
    """'ssh-xxx AAAA...' derived from the private key by OpenSSH."""
    out = sh(f"ssh-keygen -y -f {private_key_path}").decode().split()
    return f"{out[0]} {out[1]}"


def sha256_b64_padded(openssh_public_key: str) -> str:
    blob = base64.b64decode(openssh_public_key.split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def described(ec2, name, **kw):
    pairs = ec2.describe_key_pairs(KeyNames=[name], **kw)["KeyPairs"]
    assert len(pairs) == 1
    return pairs[0]


def type_and_body(public_key: str) -> str:
    parts = public_key.split()
    return f"{parts[0]} {parts[1]}"


# -- CreateKeyPair ----------------------------------------------------------------------------

def test_created_rsa_key(ec2, key_name, tmp_path):
    name = key_name("rsa")
    created = ec2.create_key_pair(KeyName=name)
    assert created["KeyName"] == name
    assert KEY_PAIR_ID_RE.match(created["KeyPairId"]), created["KeyPairId"]
    # AWS hands out RSA keys as PEM-encoded PKCS#1.
    assert created["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    fingerprint = created["KeyFingerprint"]
    assert SHA1_COLON_RE.match(fingerprint), fingerprint

    path = write_private_key(tmp_path, created["KeyMaterial"])
    # For created RSA keys: SHA-1 of the PKCS#8 DER of the private key.
    expected = openssl_colon_digest(sh(f"openssl pkcs8 -topk8 -nocrypt -in {path} -outform DER | openssl sha1 -c"))
    assert fingerprint == expected

    pub = public_key_of(path)
    assert pub.startswith("ssh-rsa ")
    entry = described(ec2, name, IncludePublicKey=True)
    assert entry["KeyType"] == "rsa"
    assert entry["KeyFingerprint"] == fingerprint
    assert entry["KeyPairId"] == created["KeyPairId"]
    assert type_and_body(entry["PublicKey"]) == pub


def test_created_ed25519_key(ec2, key_name, tmp_path):
    name = key_name("ed")
    created = ec2.create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="pem")
    fingerprint = created["KeyFingerprint"]
    # base64 SHA-256 of the public key blob, with its '=' padding (OpenSSH prints it without).
    assert SHA256_B64_RE.match(fingerprint), fingerprint
    path = write_private_key(tmp_path, created["KeyMaterial"])
    pub = public_key_of(path)
    assert pub.startswith("ssh-ed25519 ")
    assert fingerprint == sha256_b64_padded(pub)
    openssh_says = sh(f"ssh-keygen -l -E sha256 -f {path}").decode().split()[1]
    assert openssh_says == "SHA256:" + fingerprint.rstrip("=")

    entry = described(ec2, name, IncludePublicKey=True)
    assert entry["KeyType"] == "ed25519"
    assert entry["KeyFingerprint"] == fingerprint
    assert type_and_body(entry["PublicKey"]) == pub


def test_public_key_is_only_included_on_request(ec2, key_name):
    name = key_name("pub")
    ec2.create_key_pair(KeyName=name)
    assert "PublicKey" not in described(ec2, name)
    assert described(ec2, name, IncludePublicKey=True)["PublicKey"].startswith("ssh-rsa ")


def test_create_with_tags(ec2, key_name, run_id):
    name = key_name("tags")
    created = ec2.create_key_pair(
        KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "team", "Value": run_id}]}]
    )
    assert created["Tags"] == [{"Key": "team", "Value": run_id}]
    assert described(ec2, name)["Tags"] == [{"Key": "team", "Value": run_id}]
    by_tag = ec2.describe_key_pairs(Filters=[{"Name": "tag:team", "Values": [run_id]}])["KeyPairs"]
    assert [k["KeyName"] for k in by_tag] == [name]


def test_dry_run_creates_nothing(ec2, key_name):
    name = key_name("dry")
    with expect_error("DryRunOperation", 412):
        ec2.create_key_pair(KeyName=name, DryRun=True)
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.describe_key_pairs(KeyNames=[name])


# -- ImportKeyPair ----------------------------------------------------------------------------

def test_import_rsa_key_has_md5_of_public_der_fingerprint(ec2, key_name, tmp_path):
    key = tmp_path / "id_rsa"
    sh(f"ssh-keygen -q -t rsa -b 2048 -N '' -C conformance@test -f {key}")
    pub = (tmp_path / "id_rsa.pub").read_bytes()
    name = key_name("imp-rsa")
    imported = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub)
    expected = openssl_colon_digest(
        sh(f"ssh-keygen -e -m PKCS8 -f {key}.pub | openssl pkey -pubin -outform DER | openssl md5 -c")
    )
    assert MD5_COLON_RE.match(imported["KeyFingerprint"]), imported
    assert imported["KeyFingerprint"] == expected
    assert KEY_PAIR_ID_RE.match(imported["KeyPairId"])
    entry = described(ec2, name, IncludePublicKey=True)
    assert entry["KeyType"] == "rsa"
    assert entry["KeyFingerprint"] == expected
    assert type_and_body(entry["PublicKey"]) == type_and_body(pub.decode())


def test_import_ed25519_key(ec2, key_name, tmp_path):
    key = tmp_path / "id_ed25519"
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
    pub = (tmp_path / "id_ed25519.pub").read_text()
    name = key_name("imp-ed")
    imported = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub.encode())
    assert imported["KeyFingerprint"] == sha256_b64_padded(pub)
    assert described(ec2, name)["KeyType"] == "ed25519"


def test_import_rfc4716_public_key(ec2, key_name, tmp_path):
    key = tmp_path / "id_rsa"
    sh(f"ssh-keygen -q -t rsa -b 2048 -N '' -f {key}")
    rfc4716 = sh(f"ssh-keygen -e -f {key}.pub")
    assert rfc4716.startswith(b"---- BEGIN SSH2 PUBLIC KEY ----")
    expected = openssl_colon_digest(
        sh(f"ssh-keygen -e -m PKCS8 -f {key}.pub | openssl pkey -pubin -outform DER | openssl md5 -c")
    )
    imported = ec2.import_key_pair(KeyName=key_name("imp-rfc"), PublicKeyMaterial=rfc4716)
    assert imported["KeyFingerprint"] == expected


def test_import_base64_der_public_key(ec2, key_name, tmp_path):
    key = tmp_path / "id_rsa"
    sh(f"ssh-keygen -q -t rsa -b 2048 -N '' -f {key}")
    der = sh(f"ssh-keygen -e -m PKCS8 -f {key}.pub | openssl pkey -pubin -outform DER")
    expected = openssl_colon_digest(sh("openssl md5 -c", input=der))
    imported = ec2.import_key_pair(KeyName=key_name("imp-der"), PublicKeyMaterial=base64.b64encode(der))
    assert imported["KeyFingerprint"] == expected


def test_import_garbage_is_invalid_key_format(ec2, key_name):
    with expect_error("InvalidKey.Format"):
        ec2.import_key_pair(KeyName=key_name("garbage"), PublicKeyMaterial=b"this is not a public key")


def test_import_duplicate_name(ec2, key_name, tmp_path):
    key = tmp_path / "id_ed25519"
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
    pub = (tmp_path / "id_ed25519.pub").read_bytes()
    name = key_name("imp-dup")
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub)
    with expect_error("InvalidKeyPair.Duplicate"):
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=pub)


# -- DescribeKeyPairs filters -----------------------------------------------------------------

def test_key_name_filter_with_wildcards(ec2, key_name, tracker):
    base = key_name("wild")
    a, b = tracker.key(f"{base}-a1"), tracker.key(f"{base}-b2")
    ec2.create_key_pair(KeyName=a, KeyType="ed25519")
    ec2.create_key_pair(KeyName=b, KeyType="ed25519")

    def names(*patterns):
        res = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": list(patterns)}])["KeyPairs"]
        return sorted(k["KeyName"] for k in res)

    assert names(f"{base}-*") == [a, b]
    assert names(f"{base}-a?") == [a]
    assert names(f"{base}-?2") == [b]
    assert names(f"{base}-a") == []
    assert names(a) == [a]
    assert names(a, b) == [a, b]  # several values are alternatives


def test_key_pair_id_and_fingerprint_filters(ec2, key_name):
    name = key_name("idf")
    created = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    by_id = ec2.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [created["KeyPairId"]]}])
    assert [k["KeyName"] for k in by_id["KeyPairs"]] == [name]
    by_fp = ec2.describe_key_pairs(Filters=[{"Name": "fingerprint", "Values": [created["KeyFingerprint"]]}])
    assert [k["KeyName"] for k in by_fp["KeyPairs"]] == [name]
    by_ids = ec2.describe_key_pairs(KeyPairIds=[created["KeyPairId"]])["KeyPairs"]
    assert [k["KeyName"] for k in by_ids] == [name]


# -- DeleteKeyPair ----------------------------------------------------------------------------

def test_delete_by_name(ec2, key_name):
    name = key_name("del")
    ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    ec2.delete_key_pair(KeyName=name)
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.describe_key_pairs(KeyNames=[name])


def test_delete_by_id(ec2, key_name):
    name = key_name("delid")
    created = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    ec2.delete_key_pair(KeyPairId=created["KeyPairId"])
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.describe_key_pairs(KeyNames=[name])
    # The name is free again.
    again = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    assert again["KeyPairId"] != created["KeyPairId"]


def test_deleting_an_unknown_name_succeeds(ec2, key_name):
    # AWS's DeleteKeyPair is idempotent by name: scripts and Terraform rely on it.
    ec2.delete_key_pair(KeyName=key_name("never-made"))


def test_unknown_key_pair_id_in_describe(ec2):
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.describe_key_pairs(KeyPairIds=[UNKNOWN_KEY_PAIR_ID])
