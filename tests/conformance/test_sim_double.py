"""The simulated hypervisor as a CI double (`--sim-delays`): with `none` (the default) a
launch is running by the next DescribeInstances and a stop is stopped, as suites written
against EC2 doubles expect; with `aws` states take about as long as on EC2. Each test starts
its own `corral serve --hypervisor sim`, so it is skipped against an outside endpoint."""

import os
import time

import boto3
import pytest
from botocore.config import Config

from corral_server import CorralServer

pytestmark = pytest.mark.skipif(bool(os.environ.get("AWS_ENDPOINT_URL")), reason="starts its own corral serve")


def _client(creds):
    return boto3.client("ec2", endpoint_url=creds["AWS_ENDPOINT_URL"], region_name=creds["AWS_DEFAULT_REGION"],
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"], aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(delays):
        s = CorralServer(tmp_path / delays, env={"CORRAL_SIM_DELAYS": delays})
        servers.append(s)
        return _client(s.start())

    yield start
    for s in servers:
        s.stop()


def _state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _image(ec2):
    return ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["corral-minimal"]}])["Images"][0]["ImageId"]


def test_without_delays_states_change_by_the_next_describe(serve):
    ec2 = serve("none")
    image = _image(ec2)
    for _ in range(5):
        launched = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2)["Instances"]
        assert all(i["State"]["Name"] == "pending" for i in launched)
        ids = [i["InstanceId"] for i in launched]
        assert [_state(ec2, i) for i in ids] == ["running", "running"]
        ec2.stop_instances(InstanceIds=ids[:1])
        assert _state(ec2, ids[0]) == "stopped"
        ec2.start_instances(InstanceIds=ids[:1])
        assert _state(ec2, ids[0]) == "running"
        ec2.terminate_instances(InstanceIds=ids)
        assert [_state(ec2, i) for i in ids] == ["terminated", "terminated"]
    # The console reads like a Linux boot.
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert _state(ec2, iid) == "running"
    out = ec2.get_console_output(InstanceId=iid)["Output"]
    assert "Linux version" in out and "login:" in out, out


def test_with_aws_delays_a_launch_is_pending_for_a_while(serve):
    ec2 = serve("aws")
    iid = ec2.run_instances(ImageId=_image(ec2), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    started = time.monotonic()
    assert _state(ec2, iid) == "pending"
    deadline = started + 30
    while _state(ec2, iid) != "running":
        assert time.monotonic() < deadline, "not running 30 s after the launch"
        time.sleep(0.5)
    # About EC2's boot time (8 s here), not at once.
    assert time.monotonic() - started >= 6
