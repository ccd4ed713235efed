"""Helpers shared by the conformance tests: error assertions, polling with a deadline, and raw
SigV4-signed HTTP requests for what boto3 refuses to send (unknown actions, bad user-data,
skewed clocks, missing signatures).

Everything here speaks only the wire protocol; nothing knows how the server is built.
"""

import contextlib
import datetime
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.utils import percent_encode_sequence

API_VERSION = "2016-11-15"
EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"

# How long a state change may take before a test gives up, and how often it looks. The
# simulated hypervisor converges in well under a second; a real cloud may need minutes.
WAIT_TIMEOUT_S = float(os.environ.get("CONFORMANCE_WAIT_TIMEOUT", "120"))
POLL_INTERVAL_S = float(os.environ.get("CONFORMANCE_POLL_INTERVAL", "0.25"))

INSTANCE_ID_RE = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
RESERVATION_ID_RE = re.compile(r"^r-([0-9a-f]{8}|[0-9a-f]{17})$")
KEY_PAIR_ID_RE = re.compile(r"^key-[0-9a-f]{17}$")
ACCOUNT_RE = re.compile(r"^[0-9]{12}$")

# One id per pytest session; everything the suite creates carries it (tag or name prefix), so a
# sweep at the end can find what a crashed test left behind on a shared endpoint.
RUN_ID = uuid.uuid4().hex[:10]
RUN_TAG_KEY = "conformance-run"


def run_tag() -> dict:
    return {"Key": RUN_TAG_KEY, "Value": RUN_ID}


# A well-formed id that no endpoint has handed out (and never will: AWS ids are random).
UNKNOWN_INSTANCE_ID = "i-0123456789abcdef0"
UNKNOWN_AMI_ID = "ami-0123456789abcdef0"
UNKNOWN_KEY_PAIR_ID = "key-0123456789abcdef0"


@dataclass(frozen=True)
class Endpoint:
    url: str
    access_key: str
    secret_key: str
    region: str
    # Set when this suite started the server itself with a seeded account id.
    seeded_account_id: str | None = None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def waiter_config() -> dict:
    return {"Delay": POLL_INTERVAL_S, "MaxAttempts": max(1, int(WAIT_TIMEOUT_S / POLL_INTERVAL_S))}


def wait_until(predicate, what: str, timeout: float = WAIT_TIMEOUT_S):
    """Polls `predicate` until it returns something truthy, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        time.sleep(POLL_INTERVAL_S)


def error_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


@contextlib.contextmanager
def expect_error(code: str, status: int | None = 400):
    """Asserts that the block raises a ClientError with exactly this EC2 code (and HTTP status)."""
    with pytest.raises(ClientError) as info:
        yield info
    got_code, got_status = error_of(info.value)
    assert got_code == code, f"expected {code}, got {got_code}: {info.value}"
    if status is not None:
        assert got_status == status, f"{code}: expected HTTP {status}, got {got_status}"
    # Every EC2 error carries a request id and a message a human can read.
    assert info.value.response["ResponseMetadata"].get("RequestId"), "error without a request id"
    assert info.value.response["Error"].get("Message"), "error without a message"


def instances_of(describe_response: dict) -> list[dict]:
    return [i for r in describe_response["Reservations"] for i in r["Instances"]]


def instance_ids(run_response: dict) -> list[str]:
    return [i["InstanceId"] for i in run_response["Instances"]]


@dataclass
class RawResponse:
    status: int
    body: str

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def error_code(self) -> str | None:
        node = self.xml().find("./Errors/Error/Code")
        return node.text if node is not None else None


def _send(url: str, method: str, body: bytes | None, headers: dict) -> RawResponse:
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return RawResponse(resp.status, resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        return RawResponse(err.code, err.read().decode("utf-8"))


def raw_request(
    endpoint: Endpoint,
    params: dict,
    *,
    method: str = "POST",
    sign: bool = True,
    access_key: str | None = None,
    secret_key: str | None = None,
    at: datetime.datetime | None = None,
    service: str = "ec2",
    extra_headers: dict | None = None,
    send_instead: dict | None = None,
) -> RawResponse:
    """Sends a Query API request, SigV4-signed with botocore's own signer unless `sign` is false.

    `at` signs as if the clock read that (naive UTC) time, for clock-skew tests.
    `send_instead` replaces the (signed) form body with other parameters after signing.
    """
    params = dict(params)
    params.setdefault("Version", API_VERSION)
    encoded = urllib.parse.urlencode(params)
    base = endpoint.url.rstrip("/") + "/"
    if method == "GET":
        # Encoded as botocore's serializers do (RFC 3986, space as %20), which is already the
        # canonical form SigV4 signs.
        request = AWSRequest(method="GET", url=f"{base}?{percent_encode_sequence(params)}")
    else:
        request = AWSRequest(
            method="POST",
            url=base,
            data=encoded,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
    for name, value in (extra_headers or {}).items():
        request.headers[name] = value
    if sign:
        credentials = Credentials(access_key or endpoint.access_key, secret_key or endpoint.secret_key)
        signer = SigV4Auth(credentials, service, endpoint.region)
        if at is None:
            signer.add_auth(request)
        else:
            original = botocore.auth.get_current_datetime
            botocore.auth.get_current_datetime = lambda: at
            try:
                signer.add_auth(request)
            finally:
                botocore.auth.get_current_datetime = original
    prepared = request.prepare()
    body = prepared.body
    if send_instead is not None:
        tampered = dict(send_instead)
        tampered.setdefault("Version", API_VERSION)
        body = urllib.parse.urlencode(tampered)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return _send(prepared.url, prepared.method, body if method != "GET" else None, dict(prepared.headers))


def terminate_all(ec2, ids):
    """Terminates these instances whatever their termination protection; for teardowns."""
    ids = sorted(set(ids))
    if not ids:
        return
    try:
        ec2.terminate_instances(InstanceIds=ids)
        return
    except ClientError as err:
        code, _ = error_of(err)
    if code == "OperationNotPermitted":
        for i in ids:
            try:
                ec2.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": False})
            except ClientError:
                pass
    # One unknown or protected id fails the whole call: go one at a time.
    for i in ids:
        try:
            ec2.terminate_instances(InstanceIds=[i])
        except ClientError:
            pass


def http_get(url: str) -> RawResponse:
    return _send(url, "GET", None, {})


def http_post(url: str, body: bytes = b"") -> RawResponse:
    return _send(url, "POST", body, {})


def utcnow() -> datetime.datetime:
    """Naive UTC now, the form botocore's signer uses."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# --------------------------------------------------------------------------------------------
# Block storage and images (test_volumes.py, test_snapshots.py, test_image_lifecycle.py)

VOLUME_ID_RE = re.compile(r"^vol-([0-9a-f]{8}|[0-9a-f]{17})$")
SNAPSHOT_ID_RE = re.compile(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")
IMAGE_ID_RE = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")

UNKNOWN_VOLUME_ID = "vol-0123456789abcdef0"
UNKNOWN_SNAPSHOT_ID = "snap-0123456789abcdef0"


def with_run_tag(params: dict, resource_types) -> dict:
    """Adds this run's tag to the TagSpecifications of each of these resource types (creating
    the specification when the caller gave none), so the session sweep can find leftovers."""
    params = dict(params)
    specs = [dict(s) for s in params.get("TagSpecifications", [])]
    for resource_type in resource_types:
        for spec in specs:
            if spec["ResourceType"] == resource_type:
                spec["Tags"] = list(spec["Tags"]) + [run_tag()]
                break
        else:
            specs.append({"ResourceType": resource_type, "Tags": [run_tag()]})
    params["TagSpecifications"] = specs
    return params


def wait_for(ec2, waiter_name: str, **params):
    """A botocore waiter (volume_available, snapshot_completed, image_available, ...), polling
    at this suite's pace and giving up after its deadline."""
    ec2.get_waiter(waiter_name).wait(WaiterConfig=waiter_config(), **params)


def volume_of(ec2, volume_id: str) -> dict:
    found = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert [v["VolumeId"] for v in found] == [volume_id]
    return found[0]


def snapshot_of(ec2, snapshot_id: str) -> dict:
    found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert [s["SnapshotId"] for s in found] == [snapshot_id]
    return found[0]


def image_of(ec2, image_id: str) -> dict:
    found = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert [i["ImageId"] for i in found] == [image_id]
    return found[0]


def tags_of(resource: dict) -> dict:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def assert_recent(when, what: str = "timestamp", slack_s: float = 3600):
    """A parsed timestamp (botocore gives aware datetimes) close to now."""
    assert isinstance(when, datetime.datetime), f"{what} is not a timestamp: {when!r}"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < slack_s, f"{what} {when} is far from now ({now})"


def _ignore_client_errors(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ClientError:
        return None


def cleanup_storage(ec2, *, image_ids=(), instance_ids=(), volume_ids=(), snapshot_ids=()):
    """Removes what a storage test made, in the order AWS needs: images (they hold snapshots),
    instances (they hold volumes), volumes, snapshots (including those the images held).
    Best effort: whatever is already gone is skipped."""
    import botocore.exceptions

    snapshot_ids = list(snapshot_ids)
    for image_id in dict.fromkeys(image_ids):
        found = _ignore_client_errors(ec2.describe_images, ImageIds=[image_id])
        for img in (found or {}).get("Images", []):
            for bdm in img.get("BlockDeviceMappings", []):
                snap = (bdm.get("Ebs") or {}).get("SnapshotId")
                if snap:
                    snapshot_ids.append(snap)
        _ignore_client_errors(ec2.deregister_image, ImageId=image_id)
    instance_ids = sorted(set(instance_ids))
    if instance_ids:
        terminate_all(ec2, instance_ids)
        try:
            wait_for(ec2, "instance_terminated", InstanceIds=instance_ids)
        except (botocore.exceptions.WaiterError, ClientError):
            pass
    for volume_id in dict.fromkeys(volume_ids):
        found = _ignore_client_errors(ec2.describe_volumes, VolumeIds=[volume_id])
        if not found or not found["Volumes"]:
            continue
        vol = found["Volumes"][0]
        if vol["State"] in ("deleting", "deleted"):
            continue
        if vol.get("Attachments"):
            _ignore_client_errors(ec2.detach_volume, VolumeId=volume_id, Force=True)
            try:
                wait_for(ec2, "volume_available", VolumeIds=[volume_id])
            except (botocore.exceptions.WaiterError, ClientError):
                pass
        elif vol["State"] == "creating":
            try:
                wait_for(ec2, "volume_available", VolumeIds=[volume_id])
            except (botocore.exceptions.WaiterError, ClientError):
                pass
        _ignore_client_errors(ec2.delete_volume, VolumeId=volume_id)
    for snapshot_id in dict.fromkeys(snapshot_ids):
        _ignore_client_errors(ec2.delete_snapshot, SnapshotId=snapshot_id)
