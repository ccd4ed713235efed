"""EBS snapshots: CreateSnapshot (response shape, tags), DescribeSnapshots (owners, ids,
filters, errors), the snapshot_completed waiter, volumes from snapshots, DeleteSnapshot (and
InvalidSnapshot.InUse while an image uses it), CopySnapshot, DryRun."""

import pytest
from botocore.exceptions import ClientError

from support import (
    SNAPSHOT_ID_RE,
    UNKNOWN_SNAPSHOT_ID,
    UNKNOWN_VOLUME_ID,
    VOLUME_ID_RE,
    assert_recent,
    expect_error,
    run_tag,
    snapshot_of,
    tags_of,
    unique,
    volume_of,
    wait_for,
    wait_until,
)


def ids(response):
    return sorted(s["SnapshotId"] for s in response["Snapshots"])


@pytest.fixture
def source_volume(ec2, new_volume):
    """An available 2 GiB gp3 volume in the first zone."""
    volume_id = new_volume(Size=2, VolumeType="gp3")["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    return volume_id


@pytest.fixture
def completed_snapshot(ec2, new_snapshot, source_volume):
    """A completed snapshot of `source_volume`."""
    snapshot_id = new_snapshot(VolumeId=source_volume, Description="conformance source")["SnapshotId"]
    wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
    return snapshot_id


def snapshot_gone(ec2, snapshot_id):
    try:
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except ClientError as err:
        return err.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    return found == []


# -- CreateSnapshot ----------------------------------------------------------------------------

def test_create_snapshot_response_shape(ec2, new_snapshot, source_volume, account_id):
    tags = [{"Key": "Name", "Value": unique("backup")}, {"Key": "kind", "Value": "daily"}]
    snap = new_snapshot(
        VolumeId=source_volume, Description="nightly backup",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}],
    )
    assert SNAPSHOT_ID_RE.match(snap["SnapshotId"]), snap["SnapshotId"]
    assert snap["VolumeId"] == source_volume
    assert snap["State"] in ("pending", "completed")
    assert snap["VolumeSize"] == 2
    assert_recent(snap["StartTime"], "StartTime")
    assert snap["OwnerId"] == account_id
    assert "Progress" in snap
    assert snap["Description"] == "nightly backup"
    assert snap["Encrypted"] is False
    assert tags_of(snap) == {**{t["Key"]: t["Value"] for t in tags}, run_tag()["Key"]: run_tag()["Value"]}

    wait_for(ec2, "snapshot_completed", SnapshotIds=[snap["SnapshotId"]])
    described = snapshot_of(ec2, snap["SnapshotId"])
    assert described["State"] == "completed"
    assert described["Progress"] == "100%"
    for key in ("VolumeId", "VolumeSize", "StartTime", "OwnerId", "Description", "Encrypted"):
        assert described[key] == snap[key], key
    assert tags_of(described) == tags_of(snap)


def test_snapshot_of_an_attached_volume(ec2, new_volume, new_snapshot, running_instance):
    inst = running_instance()
    volume_id = new_volume(AvailabilityZone=inst["Placement"]["AvailabilityZone"])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    ec2.attach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Device="/dev/sdf")
    wait_for(ec2, "volume_in_use", VolumeIds=[volume_id])
    snapshot_id = new_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
    assert snapshot_of(ec2, snapshot_id)["VolumeId"] == volume_id


def test_create_snapshot_errors(ec2_unvalidated, new_snapshot):
    with expect_error("InvalidVolume.NotFound"):
        new_snapshot(VolumeId=UNKNOWN_VOLUME_ID)
    with expect_error("MissingParameter"):
        ec2_unvalidated.create_snapshot()


def test_create_snapshot_dry_run(ec2, source_volume, run_id):
    marker = unique("dry")
    with expect_error("DryRunOperation", 412):
        ec2.create_snapshot(
            VolumeId=source_volume, DryRun=True,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "dry", "Value": marker}]}],
        )
    assert ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:dry", "Values": [marker]}])["Snapshots"] == []
    with expect_error("DryRunOperation", 412):
        ec2.describe_snapshots(OwnerIds=["self"], DryRun=True)


# -- DescribeSnapshots -------------------------------------------------------------------------

def test_describe_snapshots_by_owner_and_id(ec2, completed_snapshot, account_id):
    assert completed_snapshot in ids(ec2.describe_snapshots(OwnerIds=["self"]))
    assert completed_snapshot in ids(ec2.describe_snapshots(OwnerIds=[account_id]))
    assert ids(ec2.describe_snapshots(SnapshotIds=[completed_snapshot])) == [completed_snapshot]
    for snap in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
        assert snap["OwnerId"] == account_id


def test_describe_snapshots_errors(ec2, completed_snapshot):
    with expect_error("InvalidSnapshot.NotFound"):
        ec2.describe_snapshots(SnapshotIds=[UNKNOWN_SNAPSHOT_ID])
    with expect_error("InvalidSnapshot.NotFound"):
        ec2.describe_snapshots(SnapshotIds=[completed_snapshot, UNKNOWN_SNAPSHOT_ID])
    with expect_error("InvalidSnapshotID.Malformed"):
        ec2.describe_snapshots(SnapshotIds=["snap-xyz"])
    with expect_error("InvalidParameterValue"):
        ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


def test_describe_snapshots_filters(ec2, new_volume, new_snapshot, account_id):
    group = unique("snaps")
    v1 = new_volume(Size=1)["VolumeId"]
    v2 = new_volume(Size=2)["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[v1, v2])

    def snap(volume_id, name, description, extra_tags=()):
        tags = [{"Key": "group", "Value": group}, {"Key": "Name", "Value": name}, *extra_tags]
        return new_snapshot(VolumeId=volume_id, Description=description,
                            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])["SnapshotId"]

    made = {
        "alpha": snap(v1, "alpha", "first of v1", [{"Key": "role", "Value": "web"}]),
        "beta": snap(v1, "beta", "second of v1"),
        "gamma": snap(v2, "gamma", "only of v2", [{"Key": "role", "Value": "db"}]),
    }
    wait_for(ec2, "snapshot_completed", SnapshotIds=list(made.values()))
    by_id = {v: k for k, v in made.items()}

    def names(*filters):
        response = ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "tag:group", "Values": [group]}, *filters])
        return sorted(by_id[s["SnapshotId"]] for s in response["Snapshots"])

    assert names() == ["alpha", "beta", "gamma"]
    assert names({"Name": "snapshot-id", "Values": [made["beta"]]}) == ["beta"]
    assert names({"Name": "volume-id", "Values": [v1]}) == ["alpha", "beta"]
    assert names({"Name": "status", "Values": ["completed"]}) == ["alpha", "beta", "gamma"]
    assert names({"Name": "status", "Values": ["pending"]}) == []
    assert names({"Name": "owner-id", "Values": [account_id]}) == ["alpha", "beta", "gamma"]
    assert names({"Name": "owner-id", "Values": ["000000000000" if account_id != "000000000000" else "111111111111"]}) == []
    assert names({"Name": "tag:role", "Values": ["db"]}) == ["gamma"]
    assert names({"Name": "tag-key", "Values": ["role"]}) == ["alpha", "gamma"]
    assert names({"Name": "tag:Name", "Values": ["?eta"]}) == ["beta"]
    assert names({"Name": "description", "Values": ["*of v1"]}) == ["alpha", "beta"]
    assert names({"Name": "volume-size", "Values": ["2"]}) == ["gamma"]
    assert names({"Name": "volume-id", "Values": [v1]}, {"Name": "tag:role", "Values": ["web"]}) == ["alpha"]


# -- volumes from snapshots --------------------------------------------------------------------

def test_volume_from_snapshot(ec2, new_volume, completed_snapshot, zones):
    v = new_volume(SnapshotId=completed_snapshot)
    assert VOLUME_ID_RE.match(v["VolumeId"])
    assert v["SnapshotId"] == completed_snapshot
    assert v["Size"] == 2, "the size defaults to the snapshot's"
    wait_for(ec2, "volume_available", VolumeIds=[v["VolumeId"]])
    described = volume_of(ec2, v["VolumeId"])
    assert described["SnapshotId"] == completed_snapshot and described["Size"] == 2
    by_filter = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [completed_snapshot]}])
    assert [x["VolumeId"] for x in by_filter["Volumes"]] == [v["VolumeId"]]

    # Larger is fine, and snapshots are regional: any zone will do.
    bigger = new_volume(SnapshotId=completed_snapshot, Size=5, AvailabilityZone=zones[-1])
    assert bigger["Size"] == 5 and bigger["AvailabilityZone"] == zones[-1]
    wait_for(ec2, "volume_available", VolumeIds=[bigger["VolumeId"]])


def test_volume_smaller_than_its_snapshot(new_volume, completed_snapshot):
    with expect_error("InvalidParameterValue"):
        new_volume(SnapshotId=completed_snapshot, Size=1)


# -- DeleteSnapshot ----------------------------------------------------------------------------

def test_delete_snapshot(ec2, new_snapshot, source_volume):
    snapshot_id = new_snapshot(VolumeId=source_volume)["SnapshotId"]
    wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    wait_until(lambda: snapshot_gone(ec2, snapshot_id), "the deleted snapshot to disappear")
    assert snapshot_id not in ids(ec2.describe_snapshots(OwnerIds=["self"]))
    with expect_error("InvalidSnapshot.NotFound"):
        ec2.delete_snapshot(SnapshotId=UNKNOWN_SNAPSHOT_ID)


def test_snapshot_outlives_its_volume(ec2, new_volume, new_snapshot):
    volume_id = new_volume(Size=3)["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    snapshot_id = new_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
    ec2.delete_volume(VolumeId=volume_id)
    wait_for(ec2, "volume_deleted", VolumeIds=[volume_id])
    snap = snapshot_of(ec2, snapshot_id)
    assert snap["State"] == "completed" and snap["VolumeSize"] == 3
    # ...and can still be restored.
    restored = new_volume(SnapshotId=snapshot_id)
    assert restored["Size"] == 3


def test_snapshot_in_use_by_an_image_cannot_be_deleted(ec2, completed_snapshot, storage, run_id):
    image_id = storage.image(ec2.register_image(
        Name=f"conf-{run_id}-inuse-{unique('x')}",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": completed_snapshot}}],
        Architecture="x86_64",
        VirtualizationType="hvm",
    )["ImageId"])
    with expect_error("InvalidSnapshot.InUse"):
        ec2.delete_snapshot(SnapshotId=completed_snapshot)
    assert snapshot_of(ec2, completed_snapshot)["State"] == "completed"
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=completed_snapshot)
    wait_until(lambda: snapshot_gone(ec2, completed_snapshot), "the snapshot to go once the image is gone")


def test_delete_snapshot_dry_run(ec2, completed_snapshot):
    with expect_error("DryRunOperation", 412):
        ec2.delete_snapshot(SnapshotId=completed_snapshot, DryRun=True)
    assert snapshot_of(ec2, completed_snapshot)["State"] == "completed"


# -- CopySnapshot ------------------------------------------------------------------------------

def test_copy_snapshot(ec2, completed_snapshot, storage, endpoint, account_id):
    copy_id = storage.snapshot(ec2.copy_snapshot(
        SourceRegion=endpoint.region, SourceSnapshotId=completed_snapshot, Description="a copy",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [run_tag()]}],
    )["SnapshotId"])
    assert SNAPSHOT_ID_RE.match(copy_id) and copy_id != completed_snapshot
    wait_for(ec2, "snapshot_completed", SnapshotIds=[copy_id])
    copy = snapshot_of(ec2, copy_id)
    assert copy["VolumeSize"] == 2
    assert copy["Description"] == "a copy"
    assert copy["OwnerId"] == account_id
    assert copy["State"] == "completed"
    # The source is untouched.
    assert snapshot_of(ec2, completed_snapshot)["State"] == "completed"


def test_copy_snapshot_errors(ec2, endpoint):
    with expect_error("InvalidSnapshot.NotFound"):
        ec2.copy_snapshot(SourceRegion=endpoint.region, SourceSnapshotId=UNKNOWN_SNAPSHOT_ID)
