"""The members clients index blindly are present in every Describe response.

Presence is checked on the parsed dict (`key in d`), not truthiness: an empty list or a false
boolean is a fine value, a missing key is a KeyError in somebody's Ansible module.
"""

import datetime
import re

import pytest

from support import (
    EC2_NAMESPACE,
    INSTANCE_ID_RE,
    KEY_PAIR_ID_RE,
    RESERVATION_ID_RE,
    instances_of,
    raw_request,
)

ISO_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


def assert_keys(d: dict, keys, where: str):
    missing = [k for k in keys if k not in d]
    assert not missing, f"{where} lacks {missing}; has {sorted(d)}"


def assert_state(state: dict):
    assert_keys(state, ["Code", "Name"], "InstanceState")
    assert STATE_CODES[state["Name"]] == state["Code"] & 0xFF


INSTANCE_KEYS = [
    "InstanceId", "ImageId", "State", "PrivateDnsName", "PublicDnsName", "StateTransitionReason",
    "AmiLaunchIndex", "ProductCodes", "InstanceType", "LaunchTime", "Placement", "Monitoring",
    "Architecture", "RootDeviceType", "RootDeviceName", "BlockDeviceMappings", "VirtualizationType",
    "ClientToken", "Tags", "SecurityGroups", "SourceDestCheck", "Hypervisor", "NetworkInterfaces",
    "EbsOptimized", "EnaSupport", "CpuOptions", "CapacityReservationSpecification", "HibernationOptions",
    "MetadataOptions", "EnclaveOptions", "PlatformDetails", "UsageOperation", "MaintenanceOptions",
]


def check_instance(inst: dict):
    assert_keys(inst, INSTANCE_KEYS, "Instance")
    assert INSTANCE_ID_RE.match(inst["InstanceId"])
    assert_state(inst["State"])
    assert isinstance(inst["LaunchTime"], datetime.datetime)
    assert inst["LaunchTime"].tzinfo is not None
    assert_keys(inst["Placement"], ["AvailabilityZone", "GroupName", "Tenancy"], "Placement")
    assert_keys(inst["Monitoring"], ["State"], "Monitoring")
    assert_keys(inst["CpuOptions"], ["CoreCount", "ThreadsPerCore"], "CpuOptions")
    assert_keys(inst["MetadataOptions"], ["State", "HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint"], "MetadataOptions")
    assert_keys(inst["HibernationOptions"], ["Configured"], "HibernationOptions")
    assert_keys(inst["EnclaveOptions"], ["Enabled"], "EnclaveOptions")
    for member in ("Tags", "BlockDeviceMappings", "NetworkInterfaces", "SecurityGroups", "ProductCodes"):
        assert isinstance(inst[member], list), member
    for tag in inst["Tags"]:
        assert_keys(tag, ["Key", "Value"], "Tag")
    assert isinstance(inst["AmiLaunchIndex"], int)
    assert isinstance(inst["EbsOptimized"], bool)
    assert isinstance(inst["SourceDestCheck"], bool)


@pytest.fixture
def running(launch, wait):
    reservation = launch(MinCount=2)
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    wait("instance_running", ids)
    return reservation


def test_run_instances_response_shape(running):
    assert_keys(running, ["ReservationId", "OwnerId", "Groups", "Instances"], "RunInstances response")
    assert RESERVATION_ID_RE.match(running["ReservationId"])
    assert isinstance(running["Groups"], list)
    for inst in running["Instances"]:
        check_instance(inst)


def test_describe_instances_shape(ec2, running):
    ids = [i["InstanceId"] for i in running["Instances"]]
    described = ec2.describe_instances(InstanceIds=ids)
    for reservation in described["Reservations"]:
        assert_keys(reservation, ["ReservationId", "OwnerId", "Groups", "Instances"], "Reservation")
        for inst in reservation["Instances"]:
            check_instance(inst)
            assert inst["State"]["Name"] == "running"


def test_instance_lists_its_root_volume(ec2, running):
    inst = instances_of(ec2.describe_instances(InstanceIds=[running["Instances"][0]["InstanceId"]]))[0]
    roots = [b for b in inst["BlockDeviceMappings"] if b["DeviceName"] == inst["RootDeviceName"]]
    assert len(roots) == 1
    assert_keys(roots[0]["Ebs"], ["VolumeId", "Status", "AttachTime", "DeleteOnTermination"], "root Ebs")


def test_state_change_shapes(ec2, running):
    ids = [i["InstanceId"] for i in running["Instances"]]
    for change in ec2.stop_instances(InstanceIds=ids)["StoppingInstances"]:
        assert_keys(change, ["InstanceId", "CurrentState", "PreviousState"], "InstanceStateChange")
        assert_state(change["CurrentState"])
        assert_state(change["PreviousState"])
    for change in ec2.terminate_instances(InstanceIds=ids)["TerminatingInstances"]:
        assert_keys(change, ["InstanceId", "CurrentState", "PreviousState"], "InstanceStateChange")


def test_instance_status_shape(ec2, running):
    ids = [i["InstanceId"] for i in running["Instances"]]
    statuses = ec2.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
    assert sorted(s["InstanceId"] for s in statuses) == sorted(ids)
    for s in statuses:
        assert_keys(s, ["InstanceId", "AvailabilityZone", "InstanceState", "InstanceStatus", "SystemStatus", "Events"], "InstanceStatus")
        assert_state(s["InstanceState"])
        for summary in (s["InstanceStatus"], s["SystemStatus"]):
            assert_keys(summary, ["Status", "Details"], "status summary")
            for detail in summary["Details"]:
                assert_keys(detail, ["Name", "Status"], "status detail")


def test_image_shape(ec2, image_id):
    img = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert_keys(img, [
        "ImageId", "ImageLocation", "State", "OwnerId", "CreationDate", "Public", "Architecture",
        "ImageType", "Name", "RootDeviceType", "RootDeviceName", "BlockDeviceMappings",
        "VirtualizationType", "Hypervisor", "EnaSupport", "PlatformDetails", "UsageOperation",
        "ProductCodes", "Tags",
    ], "Image")
    assert img["State"] == "available"
    assert isinstance(img["Public"], bool)
    # CreationDate is a string in the model, in ISO 8601 with milliseconds and Z.
    assert isinstance(img["CreationDate"], str) and ISO_TIME_RE.match(img["CreationDate"]), img["CreationDate"]
    assert img["BlockDeviceMappings"], "an EBS-backed image maps its root device"
    root = [b for b in img["BlockDeviceMappings"] if b["DeviceName"] == img["RootDeviceName"]]
    assert len(root) == 1, img["BlockDeviceMappings"]
    assert_keys(root[0]["Ebs"], ["SnapshotId", "VolumeSize", "DeleteOnTermination", "VolumeType", "Encrypted"], "image Ebs")


def test_key_pair_shape(ec2, key_name):
    name = key_name("shape")
    created = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    assert_keys(created, ["KeyName", "KeyFingerprint", "KeyMaterial", "KeyPairId"], "CreateKeyPair response")
    entry = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    assert_keys(entry, ["KeyPairId", "KeyName", "KeyFingerprint", "KeyType", "Tags", "CreateTime"], "KeyPairInfo")
    assert KEY_PAIR_ID_RE.match(entry["KeyPairId"])
    assert isinstance(entry["CreateTime"], datetime.datetime)


def test_tag_description_shape(ec2, launch, run_id):
    instance = launch()["Instances"][0]["InstanceId"]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance]}])["Tags"]
    assert tags
    for t in tags:
        assert_keys(t, ["Key", "Value", "ResourceId", "ResourceType"], "TagDescription")
        assert t["ResourceType"] == "instance"


def test_success_envelope_has_namespace_and_request_id(endpoint):
    resp = raw_request(endpoint, {"Action": "DescribeAvailabilityZones"})
    assert resp.status == 200
    root = resp.xml()
    assert root.tag == f"{{{EC2_NAMESPACE}}}DescribeAvailabilityZonesResponse"
    request_id = root.find(f"{{{EC2_NAMESPACE}}}requestId")
    assert request_id is not None and request_id.text


def test_botocore_exposes_request_ids(ec2):
    assert ec2.describe_regions()["ResponseMetadata"]["RequestId"]
