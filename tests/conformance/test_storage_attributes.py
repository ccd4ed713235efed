"""Volume and snapshot status and attributes: DescribeVolumeStatus, Describe/ModifyVolumeAttribute
(autoEnableIO) and Describe/Modify/ResetSnapshotAttribute (createVolumePermission), through
boto3 as Ansible's amazon.aws modules call them. (ResetImageAttribute is in
test_image_lifecycle.py.)"""

from support import UNKNOWN_VOLUME_ID, expect_error


def test_volume_status_is_ok(ec2, new_volume):
    vol = new_volume()["VolumeId"]
    statuses = ec2.describe_volume_status(VolumeIds=[vol])["VolumeStatuses"]
    assert len(statuses) == 1
    item = statuses[0]
    assert item["VolumeId"] == vol
    assert item["VolumeStatus"]["Status"] == "ok"
    assert {d["Name"]: d["Status"] for d in item["VolumeStatus"]["Details"]}["io-enabled"] == "passed"
    impaired = ec2.describe_volume_status(VolumeIds=[vol], Filters=[{"Name": "volume-status.status", "Values": ["impaired"]}])
    assert impaired["VolumeStatuses"] == []
    with expect_error("InvalidVolume.NotFound"):
        ec2.describe_volume_status(VolumeIds=[UNKNOWN_VOLUME_ID])


def test_volume_auto_enable_io(ec2, new_volume):
    vol = new_volume()["VolumeId"]
    got = ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO")
    assert got["VolumeId"] == vol and got["AutoEnableIO"]["Value"] is False
    ec2.modify_volume_attribute(VolumeId=vol, AutoEnableIO={"Value": True})
    assert ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO")["AutoEnableIO"]["Value"] is True
    assert ec2.describe_volume_attribute(VolumeId=vol, Attribute="productCodes")["ProductCodes"] == []


def test_snapshot_create_volume_permission(ec2, new_volume, new_snapshot):
    snap = new_snapshot(VolumeId=new_volume()["VolumeId"])["SnapshotId"]

    def perms():
        return ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")["CreateVolumePermissions"]

    assert perms() == []
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission", OperationType="add", UserIds=["111122223333"])
    ec2.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={"Add": [{"Group": "all"}]})
    got = perms()
    assert {"Group": "all"} in got and {"UserId": "111122223333"} in got
    ec2.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={"Remove": [{"UserId": "111122223333"}]})
    assert perms() == [{"Group": "all"}]
    ec2.reset_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert perms() == []
