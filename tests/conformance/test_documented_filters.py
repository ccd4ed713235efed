"""Every filter AWS documents for a Describe Corral serves is accepted (issue 8, point 5).

The names come from botocore's own model, installed with boto3: each Describe's `Filters`
member documents its filters as a list of `<code>name</code>` items. A name Corral refused would
answer InvalidParameterValue "The filter '...' is invalid"; what a filter matches is tested
with each action's own tests.
"""

import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

MODEL = botocore.session.get_session().get_service_model("ec2")


def _served() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme[readme.index("<!-- actions:begin"):readme.index("<!-- actions:end")]
    return [a.strip().rstrip(".") for a in block.splitlines()[1].split(",")]


def documented_filters(operation: str) -> list[str]:
    shape = MODEL.operation_model(operation).input_shape
    if shape is None or "Filters" not in shape.members:
        return []
    doc = shape.members["Filters"].documentation or ""
    names = re.findall(r"<li>\s*<p>\s*<code>([^<]+)</code>", doc)
    # tag:<key>, tag-key and tag-value are tested on every kind by test_tag_every_kind.
    return sorted({n.strip() for n in names if not n.startswith("tag:") and n not in ("tag", "tag-key", "tag-value")})


CASES = [(op, name) for op in _served() if op.startswith("Describe") for name in documented_filters(op)]


def test_the_documentation_lists_filters():
    # If botocore stopped documenting filters this way, the test below would check nothing.
    assert len(CASES) > 400, len(CASES)
    assert ("DescribeInstances", "instance-state-name") in CASES


@pytest.mark.parametrize("operation,name", CASES, ids=[f"{o}:{n}" for o, n in CASES])
def test_documented_filter_is_accepted(ec2, operation, name):
    call = getattr(ec2, xform_name(operation))
    try:
        call(Filters=[{"Name": name, "Values": ["x"]}])
    except ClientError as e:
        message = e.response["Error"].get("Message", "")
        assert "filter" not in message.lower() or "invalid" not in message.lower(), f"{operation} refused {name}: {message}"


# What some of the filters above match, where Corral has the value (the rest match nothing
# because nothing here has the member: products codes, events, IPv6 addresses).

def _ids(reservations):
    return {i["InstanceId"] for r in reservations["Reservations"] for i in r["Instances"]}


def test_instance_interface_filters_match(ec2, running_instance):
    inst = running_instance()
    iid = inst["InstanceId"]
    for name, value in [("network-interface.addresses.primary", "true"),
                        ("network-interface.attachment.instance-id", iid),
                        ("network-interface.availability-zone", inst["Placement"]["AvailabilityZone"]),
                        ("network-interface.addresses.private-ip-address", inst["PrivateIpAddress"])]:
        found = _ids(ec2.describe_instances(InstanceIds=[iid], Filters=[{"Name": name, "Values": [value]}]))
        assert found == {iid}, (name, value)
    other = _ids(ec2.describe_instances(InstanceIds=[iid], Filters=[
        {"Name": "network-interface.attachment.instance-id", "Values": ["i-0123456789abcdef0"]}]))
    assert other == set()
    status = ec2.describe_instance_status(InstanceIds=[iid], Filters=[
        {"Name": "instance-status.reachability", "Values": ["passed", "initializing"]}])["InstanceStatuses"]
    assert [s["InstanceId"] for s in status] == [iid]
    none = ec2.describe_instance_status(InstanceIds=[iid], Filters=[
        {"Name": "system-status.reachability", "Values": ["failed"]}])["InstanceStatuses"]
    assert none == []


def test_volume_zone_id_and_type_core_filters_match(ec2, new_volume, zones):
    vol = new_volume(AvailabilityZone=zones[0])["VolumeId"]
    zone_id = next(z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"] if z["ZoneName"] == zones[0])
    found = ec2.describe_volumes(VolumeIds=[vol], Filters=[{"Name": "availability-zone-id", "Values": [zone_id]}])["Volumes"]
    assert [v["VolumeId"] for v in found] == [vol]
    assert ec2.describe_volumes(VolumeIds=[vol], Filters=[{"Name": "fast-restored", "Values": ["true"]}])["Volumes"] == []
    types = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-cores", "Values": ["4"]},
                                                 {"Name": "instance-type", "Values": ["m5.*"]}])["InstanceTypes"]
    assert {t["InstanceType"] for t in types} == {"m5.2xlarge"}
