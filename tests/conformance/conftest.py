"""Fixtures for the conformance suite.

The endpoint comes from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), so the same tests run against any EC2-compatible
endpoint. Without AWS_ENDPOINT_URL the session starts its own Corral
(`corral serve --hypervisor sim --listen 127.0.0.1:0`, see tests/support/corral_server.py) in
a temporary state directory, reads its credentials with `corral credentials --env`, and kills it
(by PID) at the end. Its log stays in pytest's temporary directory (printed at the end) for
failed runs.

Every instance and key pair a test makes is tracked and removed at the end of that test; a
session-end sweep removes anything left behind carrying this run's tag or name prefix, so the
suite can run against a shared endpoint.
"""

import os
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support import (
    RUN_ID,
    RUN_TAG_KEY,
    Endpoint,
    instances_of,
    run_tag,
    terminate_all,
    waiter_config,
)

# tests/support: the `corral serve --hypervisor sim` this suite starts (shared with tests/ansible).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from corral_server import CorralBinaryNotFound, CorralServer, CorralServerError  # noqa: E402


def pytest_report_header(config):
    target = os.environ.get("AWS_ENDPOINT_URL") or "a Corral started by the suite (sim hypervisor)"
    return [f"conformance target: {target}", f"conformance run id: {RUN_ID}"]


# --------------------------------------------------------------------------------------------
# The endpoint


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory, request) -> Endpoint:
    url = os.environ.get("AWS_ENDPOINT_URL")
    if url:
        missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
        if missing:
            pytest.exit(f"AWS_ENDPOINT_URL is set but {', '.join(missing)} is not", returncode=2)
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if not region:
            pytest.exit("AWS_ENDPOINT_URL is set but AWS_DEFAULT_REGION is not", returncode=2)
        yield Endpoint(url, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], region)
        return
    # A seeded account id proves the seeding path and lets tests check OwnerId exactly.
    server = CorralServer(
        tmp_path_factory.mktemp("corral"),
        account_id=os.environ.get("CORRAL_ACCOUNT_ID") or None,
    )
    try:
        creds = server.start()
    except CorralBinaryNotFound as err:
        pytest.exit(
            f"corral binary not found at {err.binary}: build it with "
            "`cargo build -p corral-cli` (tests/conformance/run.sh does), set CORRAL_BIN, "
            "or point AWS_ENDPOINT_URL at a running endpoint",
            returncode=2,
        )
    except CorralServerError as err:
        pytest.exit(str(err), returncode=3)
    request.config._conformance_server_log = server.log_path
    yield Endpoint(
        url=creds["AWS_ENDPOINT_URL"],
        access_key=creds["AWS_ACCESS_KEY_ID"],
        secret_key=creds["AWS_SECRET_ACCESS_KEY"],
        region=creds["AWS_DEFAULT_REGION"],
        seeded_account_id=server.account_id,
    )
    server.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    log = getattr(config, "_conformance_server_log", None)
    if log is not None and exitstatus != 0:
        terminalreporter.write_line(f"corral serve log: {log}")


# --------------------------------------------------------------------------------------------
# Clients


def _client_config(**extra) -> Config:
    # One attempt: a 5xx or a throttle is a finding here, not something to paper over.
    return Config(retries={"mode": "standard", "max_attempts": 1}, **extra)


def _ec2_client(ep: Endpoint, **config):
    return boto3.session.Session(
        aws_access_key_id=ep.access_key,
        aws_secret_access_key=ep.secret_key,
        region_name=ep.region,
    ).client("ec2", endpoint_url=ep.url, config=_client_config(**config))


@pytest.fixture(scope="session")
def make_client(endpoint):
    """Builds a boto3 client for the endpoint, optionally with other credentials."""

    def make(service="ec2", access_key=None, secret_key=None, **config):
        session = boto3.session.Session(
            aws_access_key_id=access_key or endpoint.access_key,
            aws_secret_access_key=secret_key or endpoint.secret_key,
            region_name=endpoint.region,
        )
        return session.client(service, endpoint_url=endpoint.url, config=_client_config(**config))

    return make


@pytest.fixture(scope="session")
def ec2(make_client):
    return make_client("ec2")


@pytest.fixture(scope="session")
def ec2_unvalidated(make_client):
    """A client that sends what it is given, so the server's own validation answers."""
    return make_client("ec2", parameter_validation=False)


@pytest.fixture(scope="session")
def sts(make_client):
    return make_client("sts")


@pytest.fixture(scope="session")
def account_id(sts):
    return sts.get_caller_identity()["Account"]


# --------------------------------------------------------------------------------------------
# What the tests launch from


@pytest.fixture(scope="session")
def image(ec2):
    """The image the suite launches: CONFORMANCE_IMAGE_ID, else the one named
    CONFORMANCE_IMAGE_NAME (default corral-minimal)."""
    image_id = os.environ.get("CONFORMANCE_IMAGE_ID")
    if image_id:
        return ec2.describe_images(ImageIds=[image_id])["Images"][0]
    name = os.environ.get("CONFORMANCE_IMAGE_NAME", "corral-minimal")
    images = ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
    assert images, f"no image named {name!r} (set CONFORMANCE_IMAGE_NAME or CONFORMANCE_IMAGE_ID)"
    return images[0]


@pytest.fixture(scope="session")
def image_id(image):
    return image["ImageId"]


@pytest.fixture(scope="session")
def instance_type():
    return os.environ.get("CONFORMANCE_INSTANCE_TYPE", "t3.nano")


@pytest.fixture(scope="session")
def other_instance_type():
    """A second type, for resizing and filter tests."""
    return os.environ.get("CONFORMANCE_OTHER_INSTANCE_TYPE", "t3.micro")


@pytest.fixture(scope="session")
def zones(ec2):
    azs = ec2.describe_availability_zones()["AvailabilityZones"]
    return [z["ZoneName"] for z in azs if z["State"] == "available"]


@pytest.fixture(scope="session")
def run_id():
    return RUN_ID


@pytest.fixture
def wait(ec2):
    """wait('instance_running', ids): a botocore waiter, polling fast, with a deadline."""

    def do_wait(waiter_name, ids):
        ec2.get_waiter(waiter_name).wait(InstanceIds=list(ids), WaiterConfig=waiter_config())

    return do_wait


# --------------------------------------------------------------------------------------------
# Cleanup


class Tracker:
    """Remembers what a test made, so its teardown can remove it."""

    def __init__(self):
        self.instance_ids: list[str] = []
        self.key_names: list[str] = []

    def instances(self, ids):
        self.instance_ids.extend(ids)
        return ids

    def key(self, name):
        self.key_names.append(name)
        return name


@pytest.fixture
def tracker(ec2):
    t = Tracker()
    yield t
    terminate_all(ec2, t.instance_ids)
    for name in t.key_names:
        try:
            ec2.delete_key_pair(KeyName=name)
        except ClientError:
            pass


@pytest.fixture
def launch(ec2, tracker, image_id, instance_type):
    """launch(**RunInstances params) -> the RunInstances response; the test's teardown
    terminates what it made. Adds this run's tag to the instance TagSpecification."""

    def do_launch(**params):
        params.setdefault("ImageId", image_id)
        params.setdefault("InstanceType", instance_type)
        params.setdefault("MinCount", 1)
        params.setdefault("MaxCount", params["MinCount"])
        specs = [dict(s) for s in params.get("TagSpecifications", [])]
        for spec in specs:
            if spec["ResourceType"] == "instance":
                spec["Tags"] = list(spec["Tags"]) + [run_tag()]
                break
        else:
            specs.append({"ResourceType": "instance", "Tags": [run_tag()]})
        params["TagSpecifications"] = specs
        response = ec2.run_instances(**params)
        tracker.instances(i["InstanceId"] for i in response["Instances"])
        return response

    return do_launch


@pytest.fixture
def key_name(tracker):
    """new name each call, deleted at teardown."""

    def make(prefix="k"):
        return tracker.key(f"conf-{RUN_ID}-{prefix}-{uuid.uuid4().hex[:8]}")

    return make


@pytest.fixture(scope="session", autouse=True)
def _sweep(endpoint):
    """At the very end (before the server stops), remove anything this run left behind."""
    yield
    ec2 = _ec2_client(endpoint)
    try:
        leftovers = instances_of(
            ec2.describe_instances(
                Filters=[
                    {"Name": f"tag:{RUN_TAG_KEY}", "Values": [RUN_ID]},
                    {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
                ]
            )
        )
        terminate_all(ec2, [i["InstanceId"] for i in leftovers])
        keys = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"conf-{RUN_ID}-*"]}])
        for k in keys["KeyPairs"]:
            ec2.delete_key_pair(KeyName=k["KeyName"])
    except ClientError:
        pass


# --------------------------------------------------------------------------------------------
# Block storage and images: volumes, snapshots and images a test makes, removed at its end

from support import cleanup_storage, wait_for, with_run_tag  # noqa: E402


class StorageTracker:
    """Remembers the volumes, snapshots and images a test made (instances stay with `tracker`)."""

    def __init__(self):
        self.volume_ids: list[str] = []
        self.snapshot_ids: list[str] = []
        self.image_ids: list[str] = []

    def volume(self, volume_id):
        self.volume_ids.append(volume_id)
        return volume_id

    def snapshot(self, snapshot_id):
        self.snapshot_ids.append(snapshot_id)
        return snapshot_id

    def image(self, image_id):
        self.image_ids.append(image_id)
        return image_id


@pytest.fixture
def storage(ec2, tracker):
    """Tracks storage a test made. Its teardown runs before `tracker`'s, so it terminates the
    test's instances itself first (an attached volume cannot be deleted)."""
    s = StorageTracker()
    yield s
    cleanup_storage(
        ec2,
        image_ids=s.image_ids,
        instance_ids=tracker.instance_ids,
        volume_ids=s.volume_ids,
        snapshot_ids=s.snapshot_ids,
    )


@pytest.fixture
def new_volume(ec2, storage, zones):
    """new_volume(**CreateVolume params) -> the CreateVolume response, tracked for teardown.
    Defaults: the first zone, 1 GiB (unless a SnapshotId is given); a parameter given as None
    is left out. Adds this run's tag."""

    def make(**params):
        params.setdefault("AvailabilityZone", zones[0])
        if "Size" not in params and "SnapshotId" not in params:
            params["Size"] = 1
        params = {k: v for k, v in params.items() if v is not None}  # None: leave it out
        response = ec2.create_volume(**with_run_tag(params, ["volume"]))
        storage.volume(response["VolumeId"])
        return response

    return make


@pytest.fixture
def new_snapshot(ec2, storage):
    """new_snapshot(**CreateSnapshot params) -> the CreateSnapshot response, tracked; adds this
    run's tag."""

    def make(**params):
        response = ec2.create_snapshot(**with_run_tag(params, ["snapshot"]))
        storage.snapshot(response["SnapshotId"])
        return response

    return make


@pytest.fixture
def running_instance(ec2, launch):
    """running_instance(**RunInstances params) -> the instance, described once it runs."""

    def make(**params):
        instance_id = launch(**params)["Instances"][0]["InstanceId"]
        wait_for(ec2, "instance_running", InstanceIds=[instance_id])
        return instances_of(ec2.describe_instances(InstanceIds=[instance_id]))[0]

    return make


@pytest.fixture(scope="session", autouse=True)
def _sweep_storage(endpoint):
    """At the very end, remove images, volumes and snapshots this run left behind (by tag, and
    images also by this run's name prefix)."""
    yield
    ec2 = _ec2_client(endpoint)
    run_filter = [{"Name": f"tag:{RUN_TAG_KEY}", "Values": [RUN_ID]}]
    try:
        images = ec2.describe_images(Owners=["self"], Filters=run_filter)["Images"]
        images += ec2.describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [f"conf-{RUN_ID}-*"]}])["Images"]
        volumes = ec2.describe_volumes(Filters=run_filter)["Volumes"]
        snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=run_filter)["Snapshots"]
    except ClientError:
        return
    cleanup_storage(
        ec2,
        image_ids=[i["ImageId"] for i in images],
        volume_ids=[v["VolumeId"] for v in volumes],
        snapshot_ids=[s["SnapshotId"] for s in snapshots],
    )
