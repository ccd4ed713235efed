"""Every Describe*Attribute call takes the same path: the id is checked (missing, malformed,
unknown: the kind's codes), then the attribute name, then DryRun; Modify calls check the id the
same way and answer DryRun without changing anything."""

import pytest

from support import expect_error

# (action, id member, a malformed id, a well-formed unknown id, its NotFound code, a valid attribute)
CASES = [
    ("describe_instance_attribute", "InstanceId", "i-xyz", "i-0123456789abcdef0", "InvalidInstanceID.NotFound", "instanceType"),
    ("describe_image_attribute", "ImageId", "ami-xyz", "ami-0123456789abcdef0", "InvalidAMIID.NotFound", "description"),
    ("describe_snapshot_attribute", "SnapshotId", "snap-xyz", "snap-0123456789abcdef0", "InvalidSnapshot.NotFound", "createVolumePermission"),
    ("describe_volume_attribute", "VolumeId", "vol-xyz", "vol-0123456789abcdef0", "InvalidVolume.NotFound", "autoEnableIO"),
    ("describe_vpc_attribute", "VpcId", "vpc-xyz", "vpc-0123456789abcdef0", "InvalidVpcID.NotFound", "enableDnsSupport"),
]
MALFORMED = {"i": "InvalidInstanceID.Malformed", "ami": "InvalidAMIID.Malformed", "snap": "InvalidSnapshotID.Malformed",
             "vol": "InvalidVolumeID.Malformed", "vpc": "InvalidVpcID.Malformed"}


@pytest.mark.parametrize("action,member,malformed,unknown,not_found,attribute", CASES, ids=[c[0] for c in CASES])
def test_describe_attribute_checks_in_order(ec2_unvalidated, action, member, malformed, unknown, not_found, attribute):
    call = getattr(ec2_unvalidated, action)
    with expect_error(MALFORMED[malformed.split("-")[0]]):
        call(**{member: malformed, "Attribute": attribute})
    with expect_error(not_found):
        call(**{member: unknown, "Attribute": attribute})
    # The attribute name is checked before the store is read.
    with expect_error("InvalidParameterValue"):
        call(**{member: unknown, "Attribute": "noSuchAttribute"})
    with expect_error("MissingParameter"):
        call(**{"Attribute": attribute})


def test_dry_run_after_the_checks_and_nothing_changes(ec2, new_volume):
    vol = new_volume()["VolumeId"]
    with expect_error("DryRunOperation", 412):
        ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO", DryRun=True)
    with expect_error("DryRunOperation", 412):
        ec2.modify_volume_attribute(VolumeId=vol, AutoEnableIO={"Value": True}, DryRun=True)
    assert ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is False
    ec2.modify_volume_attribute(VolumeId=vol, AutoEnableIO={"Value": True})
    assert ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is True
    with expect_error("InvalidVolume.NotFound"):
        ec2.modify_volume_attribute(VolumeId="vol-0123456789abcdef0", AutoEnableIO={"Value": True})
