"""Images a user makes: CreateImage from an instance, RegisterImage from a snapshot,
CopyImage, DeregisterImage (its snapshots stay), launching from a made image, DescribeImages
filters over them, DescribeImageAttribute/ModifyImageAttribute (description, launch
permissions), errors and DryRun."""

import datetime

import pytest
from botocore.exceptions import ClientError

from support import (
    IMAGE_ID_RE,
    SNAPSHOT_ID_RE,
    UNKNOWN_AMI_ID,
    UNKNOWN_INSTANCE_ID,
    UNKNOWN_SNAPSHOT_ID,
    assert_recent,
    expect_error,
    image_of,
    instances_of,
    run_tag,
    snapshot_of,
    tags_of,
    unique,
    volume_of,
    wait_for,
    wait_until,
    with_run_tag,
)


def ids(response):
    return sorted(i["ImageId"] for i in response["Images"])


def image_name(run_id, what="img"):
    return f"conf-{run_id}-{unique(what)}"


def root_mapping_of(image):
    for m in image.get("BlockDeviceMappings") or []:
        if m["DeviceName"] == image["RootDeviceName"]:
            return m
    pytest.fail(f"image {image['ImageId']} has no mapping for its root device {image['RootDeviceName']}")


def image_gone(ec2, image_id):
    """Deregistered: DescribeImages no longer lists it as usable. (AWS may keep showing a
    deregistered image, in state `deregistered`, for a while.)"""
    try:
        found = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as err:
        return err.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    return all(i["State"] == "deregistered" for i in found)


@pytest.fixture
def made_snapshot(ec2, new_volume, new_snapshot):
    """A completed snapshot of a fresh 2 GiB volume."""
    volume_id = new_volume(Size=2)["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    snapshot_id = new_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
    return snapshot_id


@pytest.fixture
def register(ec2, storage):
    """register(snapshot_id, **RegisterImage params) -> image id, tracked for teardown."""

    def do_register(snapshot_id, **params):
        params.setdefault("RootDeviceName", "/dev/xvda")
        params.setdefault("BlockDeviceMappings", [
            {"DeviceName": params["RootDeviceName"], "Ebs": {"SnapshotId": snapshot_id, "DeleteOnTermination": True}}])
        params.setdefault("Architecture", "x86_64")
        params.setdefault("VirtualizationType", "hvm")
        return storage.image(ec2.register_image(**params)["ImageId"])

    return do_register


@pytest.fixture
def create_image(ec2, storage):
    """create_image(**CreateImage params) -> image id, tracked (with its snapshots) for
    teardown; tags the image with this run's tag. NoReboot unless told otherwise."""

    def do_create(**params):
        params.setdefault("NoReboot", True)
        return storage.image(ec2.create_image(**with_run_tag(params, ["image"]))["ImageId"])

    return do_create


# -- CreateImage -------------------------------------------------------------------------------

def test_create_image_from_an_instance(ec2, running_instance, create_image, run_id, account_id):
    inst = running_instance()
    instance_id = inst["InstanceId"]
    root_volume_id = {m["DeviceName"]: m for m in inst["BlockDeviceMappings"]}[inst["RootDeviceName"]]["Ebs"]["VolumeId"]
    name = image_name(run_id, "made")
    image_id = create_image(
        InstanceId=instance_id, Name=name, Description="made by the conformance suite",
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "origin", "Value": "create-image"}]},
                           {"ResourceType": "snapshot", "Tags": [{"Key": "origin", "Value": "create-image"}]}],
    )
    assert IMAGE_ID_RE.match(image_id), image_id
    wait_for(ec2, "image_available", ImageIds=[image_id])

    img = image_of(ec2, image_id)
    assert img["Name"] == name
    assert img["Description"] == "made by the conformance suite"
    assert img["State"] == "available"
    assert img["OwnerId"] == account_id
    assert img["Public"] is False
    assert img["ImageType"] == "machine"
    assert img["RootDeviceType"] == "ebs"
    assert img["RootDeviceName"] == inst["RootDeviceName"]
    assert img["VirtualizationType"] == "hvm"
    assert img["Architecture"] == inst["Architecture"]
    assert img["CreationDate"]
    assert tags_of(img)["origin"] == "create-image"

    ebs = root_mapping_of(img)["Ebs"]
    assert SNAPSHOT_ID_RE.match(ebs["SnapshotId"]), ebs
    assert ebs["VolumeSize"] == volume_of(ec2, root_volume_id)["Size"]
    snap = snapshot_of(ec2, ebs["SnapshotId"])
    assert snap["OwnerId"] == account_id
    assert snap["VolumeSize"] == ebs["VolumeSize"]
    assert tags_of(snap)["origin"] == "create-image"
    wait_for(ec2, "snapshot_completed", SnapshotIds=[ebs["SnapshotId"]])

    # NoReboot: the instance kept running.
    assert instances_of(ec2.describe_instances(InstanceIds=[instance_id]))[0]["State"]["Name"] == "running"


def test_launch_from_a_created_image(ec2, running_instance, create_image, run_id):
    source = running_instance()
    image_id = create_image(InstanceId=source["InstanceId"], Name=image_name(run_id, "launch"))
    wait_for(ec2, "image_available", ImageIds=[image_id])
    img = image_of(ec2, image_id)

    inst = running_instance(ImageId=image_id)
    assert inst["ImageId"] == image_id
    assert inst["RootDeviceName"] == img["RootDeviceName"]
    root = {m["DeviceName"]: m for m in inst["BlockDeviceMappings"]}[img["RootDeviceName"]]
    root_volume = volume_of(ec2, root["Ebs"]["VolumeId"])
    assert root_volume["SnapshotId"] == root_mapping_of(img)["Ebs"]["SnapshotId"]
    assert root_volume["Size"] == root_mapping_of(img)["Ebs"]["VolumeSize"]


def test_create_image_name_rules(ec2, ec2_unvalidated, running_instance, create_image, storage, run_id):
    instance_id = running_instance()["InstanceId"]
    name = image_name(run_id, "dup")
    create_image(InstanceId=instance_id, Name=name)
    with expect_error("InvalidAMIName.Duplicate"):
        create_image(InstanceId=instance_id, Name=name)
    # 3 to 128 characters, from a limited set. (botocore itself refuses names under 3.)
    with expect_error("InvalidAMIName.Malformed"):
        storage.image(ec2_unvalidated.create_image(InstanceId=instance_id, Name="ab", NoReboot=True)["ImageId"])
    with expect_error("InvalidAMIName.Malformed"):
        create_image(InstanceId=instance_id, Name=f"conf-{run_id}-bad!name")
    with expect_error("InvalidAMIName.Malformed"):
        create_image(InstanceId=instance_id, Name=f"conf-{run_id}-" + "x" * 128)


def test_create_image_errors(ec2, create_image, running_instance, run_id):
    with expect_error("InvalidInstanceID.NotFound"):
        create_image(InstanceId=UNKNOWN_INSTANCE_ID, Name=image_name(run_id))
    instance_id = running_instance()["InstanceId"]
    with expect_error("DryRunOperation", 412):
        ec2.create_image(InstanceId=instance_id, Name=image_name(run_id, "dry"), NoReboot=True, DryRun=True)


# -- RegisterImage -----------------------------------------------------------------------------

def test_register_image_from_a_snapshot(ec2, made_snapshot, register, run_id, account_id):
    name = image_name(run_id, "reg")
    image_id = register(made_snapshot, Name=name, Description="registered")
    assert IMAGE_ID_RE.match(image_id)
    wait_for(ec2, "image_available", ImageIds=[image_id])
    img = image_of(ec2, image_id)
    assert img["Name"] == name
    assert img["Description"] == "registered"
    assert img["OwnerId"] == account_id
    assert img["RootDeviceName"] == "/dev/xvda"
    assert img["RootDeviceType"] == "ebs"
    assert img["Architecture"] == "x86_64"
    assert img["VirtualizationType"] == "hvm"
    assert img["Public"] is False
    ebs = root_mapping_of(img)["Ebs"]
    assert ebs["SnapshotId"] == made_snapshot
    assert ebs["VolumeSize"] == 2, "the size defaults to the snapshot's"
    assert ebs["DeleteOnTermination"] is True


def test_register_image_errors(ec2, made_snapshot, register, run_id):
    name = image_name(run_id, "regdup")
    register(made_snapshot, Name=name)
    with expect_error("InvalidAMIName.Duplicate"):
        register(made_snapshot, Name=name)
    with expect_error("DryRunOperation", 412):
        ec2.register_image(
            Name=image_name(run_id, "dry"), RootDeviceName="/dev/xvda", Architecture="x86_64",
            VirtualizationType="hvm", DryRun=True,
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": made_snapshot}}],
        )
    # Sizes past what the volume type holds (16 TiB for gp2) are refused, not wrapped or
    # left for RunInstances to overflow on (2**34 GiB was 0 bytes, 2**62 a panic).
    for size in [2 ** 34, 2 ** 62, 16385]:
        with expect_error("InvalidParameterValue"):
            register(made_snapshot, Name=image_name(run_id, f"huge{size}"),
                     BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": made_snapshot, "VolumeSize": size}}])


# -- DeregisterImage ---------------------------------------------------------------------------

def test_deregister_image_keeps_its_snapshots(ec2, made_snapshot, register, run_id):
    name = image_name(run_id, "dereg")
    image_id = register(made_snapshot, Name=name)
    wait_for(ec2, "image_available", ImageIds=[image_id])

    ec2.deregister_image(ImageId=image_id)
    wait_until(lambda: image_gone(ec2, image_id), "the image to be deregistered")
    listed = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
    assert all(i["State"] == "deregistered" for i in listed), listed
    available = ec2.describe_images(Owners=["self"], Filters=[{"Name": "state", "Values": ["available"]}])
    assert image_id not in ids(available)

    # The snapshot stays, and can be deleted now that no image uses it.
    assert snapshot_of(ec2, made_snapshot)["State"] == "completed"
    ec2.delete_snapshot(SnapshotId=made_snapshot)

    with expect_error("InvalidAMIID.NotFound"):
        ec2.deregister_image(ImageId=UNKNOWN_AMI_ID)


# -- CopyImage ---------------------------------------------------------------------------------

def test_copy_image(ec2, made_snapshot, register, storage, endpoint, run_id, account_id):
    source_id = register(made_snapshot, Name=image_name(run_id, "src"))
    wait_for(ec2, "image_available", ImageIds=[source_id])
    name = image_name(run_id, "copy")
    copy_id = storage.image(ec2.copy_image(
        SourceImageId=source_id, SourceRegion=endpoint.region, Name=name, Description="a copy",
    )["ImageId"])
    assert IMAGE_ID_RE.match(copy_id) and copy_id != source_id
    wait_for(ec2, "image_available", ImageIds=[copy_id])
    copy = image_of(ec2, copy_id)
    assert copy["Name"] == name
    assert copy["Description"] == "a copy"
    assert copy["OwnerId"] == account_id
    copied_snapshot = root_mapping_of(copy)["Ebs"]["SnapshotId"]
    assert SNAPSHOT_ID_RE.match(copied_snapshot)
    assert copied_snapshot != made_snapshot, "a copied image has its own snapshots"
    storage.snapshot(copied_snapshot)
    assert snapshot_of(ec2, copied_snapshot)["VolumeSize"] == 2
    assert image_of(ec2, source_id)["State"] == "available"


def test_copy_image_errors(ec2, endpoint, run_id):
    with expect_error("InvalidAMIID.NotFound"):
        ec2.copy_image(SourceImageId=UNKNOWN_AMI_ID, SourceRegion=endpoint.region, Name=image_name(run_id))


# -- DescribeImages over made images -----------------------------------------------------------

def test_describe_images_filters(ec2, made_snapshot, register, run_id, account_id):
    prefix = f"conf-{run_id}-{unique('flt')}"
    a = register(made_snapshot, Name=f"{prefix}-alpha",
                 TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "role", "Value": "web"}, run_tag()]}])
    b = register(made_snapshot, Name=f"{prefix}-beta",
                 TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "role", "Value": "db"}, run_tag()]}])
    wait_for(ec2, "image_available", ImageIds=[a, b])

    def found(*filters, **kw):
        return ids(ec2.describe_images(Filters=[*filters], **kw))

    assert found({"Name": "name", "Values": [f"{prefix}-*"]}) == sorted([a, b])
    assert found({"Name": "name", "Values": [f"{prefix}-?eta"]}) == [b]
    assert found({"Name": "name", "Values": [f"{prefix}-alpha"]}) == [a]
    assert found({"Name": "name", "Values": [f"{prefix}-alph"]}) == []
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, Owners=["self"]) == sorted([a, b])
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "owner-id", "Values": [account_id]}) == sorted([a, b])
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "state", "Values": ["available"]}) == sorted([a, b])
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "tag:role", "Values": ["db"]}) == [b]
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "tag-key", "Values": ["role"]}) == sorted([a, b])
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "is-public", "Values": ["false"]}) == sorted([a, b])
    assert found({"Name": "name", "Values": [f"{prefix}-*"]}, {"Name": "is-public", "Values": ["true"]}) == []
    assert found({"Name": "block-device-mapping.snapshot-id", "Values": [made_snapshot]}) == sorted([a, b])
    assert found({"Name": "image-id", "Values": [a]}) == [a]
    mine = ids(ec2.describe_images(Owners=["self"]))
    assert a in mine and b in mine
    assert ids(ec2.describe_images(ImageIds=[a, b])) == sorted([a, b])


# -- image attributes --------------------------------------------------------------------------

def test_image_description_attribute(ec2, made_snapshot, register, run_id):
    image_id = register(made_snapshot, Name=image_name(run_id, "attr"), Description="before")
    wait_for(ec2, "image_available", ImageIds=[image_id])
    attr = ec2.describe_image_attribute(ImageId=image_id, Attribute="description")
    assert attr["ImageId"] == image_id
    assert attr["Description"] == {"Value": "before"}

    ec2.modify_image_attribute(ImageId=image_id, Description={"Value": "after"})
    assert ec2.describe_image_attribute(ImageId=image_id, Attribute="description")["Description"] == {"Value": "after"}
    assert image_of(ec2, image_id)["Description"] == "after"


def test_image_launch_permissions(ec2, made_snapshot, register, run_id):
    image_id = register(made_snapshot, Name=image_name(run_id, "perm"))
    wait_for(ec2, "image_available", ImageIds=[image_id])
    attr = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert attr["ImageId"] == image_id
    assert attr["LaunchPermissions"] == []

    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    attr = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert attr["LaunchPermissions"] == [{"Group": "all"}]
    assert image_of(ec2, image_id)["Public"] is True
    assert image_id in ids(ec2.describe_images(Filters=[{"Name": "is-public", "Values": ["true"]},
                                                         {"Name": "image-id", "Values": [image_id]}]))

    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"Group": "all"}]})
    assert ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == []
    assert image_of(ec2, image_id)["Public"] is False

    # ResetImageAttribute takes launchPermission back to private in one call.
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    ec2.reset_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"] == []
    assert image_of(ec2, image_id)["Public"] is False


def test_image_attribute_errors(ec2):
    with expect_error("InvalidAMIID.NotFound"):
        ec2.describe_image_attribute(ImageId=UNKNOWN_AMI_ID, Attribute="description")
    with expect_error("InvalidAMIID.NotFound"):
        ec2.modify_image_attribute(ImageId=UNKNOWN_AMI_ID, Description={"Value": "x"})


def test_register_image_from_unknown_snapshot_is_refused(ec2, register, run_id):
    # Whatever the code, nothing may be registered.
    with pytest.raises(ClientError):
        register(UNKNOWN_SNAPSHOT_ID, Name=image_name(run_id, "nosnap"))
    assert ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": [f"conf-{run_id}-nosnap-*"]}])["Images"] == []


def test_created_image_timestamps(ec2, made_snapshot, register, run_id):
    image_id = register(made_snapshot, Name=image_name(run_id, "ts"))
    wait_for(ec2, "image_available", ImageIds=[image_id])
    created = datetime.datetime.fromisoformat(image_of(ec2, image_id)["CreationDate"].replace("Z", "+00:00"))
    assert_recent(created, "CreationDate")
