"""EBS volumes: CreateVolume (types and their IOPS/throughput rules, sizes, errors),
DescribeVolumes (ids, filters, pagination), AttachVolume/DetachVolume, DeleteVolume,
ModifyVolume/DescribeVolumesModifications, waiters, DryRun; and the root volumes RunInstances
gives every instance (BlockDeviceMappings at launch, DeleteOnTermination)."""

import pytest

from support import (
    UNKNOWN_INSTANCE_ID,
    UNKNOWN_SNAPSHOT_ID,
    UNKNOWN_VOLUME_ID,
    VOLUME_ID_RE,
    assert_recent,
    cleanup_storage,
    expect_error,
    instances_of,
    run_tag,
    tags_of,
    unique,
    volume_of,
    wait_for,
    wait_until,
)


def ids(response):
    return sorted(v["VolumeId"] for v in response["Volumes"])


def attachment_of(ec2, volume_id):
    attachments = volume_of(ec2, volume_id).get("Attachments") or []
    return attachments[0] if attachments else None


def wait_attached(ec2, volume_id):
    """volume_in_use, then the attachment itself reaching `attached`."""
    wait_for(ec2, "volume_in_use", VolumeIds=[volume_id])
    return wait_until(
        lambda: (a := attachment_of(ec2, volume_id)) and a["State"] == "attached" and a,
        f"{volume_id} attached",
    )


def instance_of(ec2, instance_id):
    return instances_of(ec2.describe_instances(InstanceIds=[instance_id]))[0]


def mappings_by_device(instance):
    return {m["DeviceName"]: m for m in instance.get("BlockDeviceMappings") or []}


def root_mapping_of(image):
    for m in image.get("BlockDeviceMappings") or []:
        if m["DeviceName"] == image["RootDeviceName"]:
            return m
    pytest.fail(f"image {image['ImageId']} has no mapping for its root device {image['RootDeviceName']}")


# -- CreateVolume ------------------------------------------------------------------------------

def test_create_gp3_volume_response_shape(ec2, new_volume, zones):
    tags = [{"Key": "Name", "Value": unique("data")}, {"Key": "team", "Value": "storage"}]
    v = new_volume(
        AvailabilityZone=zones[0], Size=10, VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
    )
    assert VOLUME_ID_RE.match(v["VolumeId"]), v["VolumeId"]
    assert v["Size"] == 10
    assert v["AvailabilityZone"] == zones[0]
    assert v["State"] in ("creating", "available")
    assert_recent(v["CreateTime"], "CreateTime")
    assert v["VolumeType"] == "gp3"
    assert v["Encrypted"] is False
    assert v["Iops"] == 3000  # gp3 baseline
    assert v["Throughput"] == 125  # gp3 baseline, MiB/s
    assert v["MultiAttachEnabled"] is False
    assert tags_of(v) == {**{t["Key"]: t["Value"] for t in tags}, run_tag()["Key"]: run_tag()["Value"]}

    wait_for(ec2, "volume_available", VolumeIds=[v["VolumeId"]])
    described = volume_of(ec2, v["VolumeId"])
    for key in ("Size", "AvailabilityZone", "VolumeType", "Encrypted", "Iops", "Throughput",
                "MultiAttachEnabled", "CreateTime"):
        assert described[key] == v[key], key
    assert described["State"] == "available"
    assert described["Attachments"] == []
    assert described.get("SnapshotId", "") == ""  # AWS sends an empty snapshotId
    assert tags_of(described) == tags_of(v)


def test_default_volume_type_is_gp2_with_baseline_iops(ec2, new_volume):
    v = new_volume(Size=50)
    assert v["VolumeType"] == "gp2"
    # gp2: 3 IOPS per GiB, at least 100.
    assert v["Iops"] == 150
    assert "Throughput" not in v or v["Throughput"] is None
    small = new_volume(Size=2)
    assert small["Iops"] == 100


@pytest.mark.parametrize(
    "params",
    [
        {"VolumeType": "gp2", "Size": 1},
        {"VolumeType": "gp3", "Size": 1},
        {"VolumeType": "gp3", "Size": 10, "Iops": 4000, "Throughput": 250},
        {"VolumeType": "io1", "Size": 4, "Iops": 200},
        {"VolumeType": "io2", "Size": 4, "Iops": 200},
        {"VolumeType": "st1", "Size": 125},
        {"VolumeType": "sc1", "Size": 125},
        {"VolumeType": "standard", "Size": 1},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_volume_types_are_accepted(ec2, new_volume, params):
    v = new_volume(**params)
    assert v["VolumeType"] == params["VolumeType"]
    assert v["Size"] == params["Size"]
    if "Iops" in params:
        assert v["Iops"] == params["Iops"]
    if "Throughput" in params:
        assert v["Throughput"] == params["Throughput"]
    wait_for(ec2, "volume_available", VolumeIds=[v["VolumeId"]])
    assert volume_of(ec2, v["VolumeId"])["VolumeType"] == params["VolumeType"]


@pytest.mark.parametrize(
    "params,code",
    [
        # IOPS can be provisioned for gp3, io1 and io2 only.
        ({"VolumeType": "gp2", "Size": 10, "Iops": 3000}, "InvalidParameterCombination"),
        # io1 and io2 need their IOPS.
        ({"VolumeType": "io1", "Size": 10}, "InvalidParameterCombination"),
        # Throughput can be provisioned for gp3 only.
        ({"VolumeType": "gp2", "Size": 10, "Throughput": 200}, "InvalidParameterCombination"),
        # gp3 ranges: 3000 IOPS and 125 MiB/s at least.
        ({"VolumeType": "gp3", "Size": 10, "Iops": 2999}, "InvalidParameterValue"),
        ({"VolumeType": "gp3", "Size": 10, "Throughput": 124}, "InvalidParameterValue"),
        # io1: at most 50 IOPS per GiB.
        ({"VolumeType": "io1", "Size": 10, "Iops": 1000}, "InvalidParameterValue"),
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()) if isinstance(p, dict) else p,
)
def test_iops_and_throughput_rules(new_volume, params, code):
    with expect_error(code):
        new_volume(**params)


@pytest.mark.parametrize(
    "volume_type,size",
    [("gp2", 0), ("gp2", 16385), ("io1", 3), ("st1", 124), ("sc1", 124), ("standard", 1025)],
)
def test_size_out_of_range_for_type(new_volume, volume_type, size):
    with expect_error("InvalidParameterValue"):
        new_volume(VolumeType=volume_type, Size=size)


def test_create_volume_errors(new_volume):
    with expect_error("MissingParameter"):
        new_volume(AvailabilityZone=None, Size=1)  # neither AvailabilityZone nor AvailabilityZoneId
    with expect_error("InvalidZone.NotFound"):
        new_volume(AvailabilityZone="nowhere-9z", Size=1)
    with expect_error("MissingParameter"):
        new_volume(Size=None)  # neither Size nor SnapshotId
    with expect_error("InvalidSnapshot.NotFound"):
        new_volume(SnapshotId=UNKNOWN_SNAPSHOT_ID)


def test_unknown_volume_type(new_volume):
    with expect_error("UnknownVolumeType"):
        new_volume(VolumeType="gp9", Size=1)


def test_create_volume_by_zone_id(ec2, new_volume):
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]
    v = new_volume(AvailabilityZone=None, AvailabilityZoneId=zone["ZoneId"], Size=1)
    assert v["AvailabilityZone"] == zone["ZoneName"]


def test_create_volume_dry_run(ec2, zones, run_id):
    marker = unique("dry")
    with expect_error("DryRunOperation", 412):
        ec2.create_volume(
            AvailabilityZone=zones[0], Size=1, DryRun=True,
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "dry", "Value": marker}]}],
        )
    assert ec2.describe_volumes(Filters=[{"Name": "tag:dry", "Values": [marker]}])["Volumes"] == []
    with expect_error("DryRunOperation", 412):
        ec2.describe_volumes(DryRun=True)


# -- DescribeVolumes ---------------------------------------------------------------------------

def test_describe_volumes_by_id(ec2, new_volume):
    a, b = new_volume()["VolumeId"], new_volume()["VolumeId"]
    assert ids(ec2.describe_volumes(VolumeIds=[a])) == [a]
    assert ids(ec2.describe_volumes(VolumeIds=[a, b])) == sorted([a, b])
    everything = ids(ec2.describe_volumes())
    assert a in everything and b in everything


def test_describe_volumes_errors(ec2, new_volume):
    known = new_volume()["VolumeId"]
    with expect_error("InvalidVolume.NotFound"):
        ec2.describe_volumes(VolumeIds=[UNKNOWN_VOLUME_ID])
    with expect_error("InvalidVolume.NotFound"):
        ec2.describe_volumes(VolumeIds=[known, UNKNOWN_VOLUME_ID])
    with expect_error("InvalidVolumeID.Malformed"):
        ec2.describe_volumes(VolumeIds=["vol-xyz"])
    with expect_error("InvalidParameterValue"):
        ec2.describe_volumes(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


def test_volume_ids_with_max_results(ec2, new_volume):
    known = new_volume()["VolumeId"]
    # DescribeVolumes: MaxResults cannot be combined with VolumeIds.
    with expect_error("InvalidParameterCombination"):
        ec2.describe_volumes(VolumeIds=[known], MaxResults=5)


@pytest.fixture(scope="module")
def volume_set(ec2, image_id, instance_type, zones):
    """Three volumes sharing a `set` tag: alpha (gp3, 1 GiB, first zone, role=web, attached to an
    instance as /dev/sdf), beta (gp2, 2 GiB, last zone, role=db), gamma (gp3, 3 GiB, first zone)."""
    set_tag = unique("set")
    made, instance_ids = {}, []

    def create(name, volume_type, size, zone, extra_tags=()):
        tags = [{"Key": "Name", "Value": name}, {"Key": "set", "Value": set_tag}, run_tag(), *extra_tags]
        v = ec2.create_volume(AvailabilityZone=zone, Size=size, VolumeType=volume_type,
                              TagSpecifications=[{"ResourceType": "volume", "Tags": tags}])
        made[name] = v["VolumeId"]

    try:
        r = ec2.run_instances(
            ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1,
            Placement={"AvailabilityZone": zones[0]},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [run_tag()]}],
        )
        instance_ids.append(r["Instances"][0]["InstanceId"])
        create("alpha", "gp3", 1, zones[0], [{"Key": "role", "Value": "web"}])
        create("beta", "gp2", 2, zones[-1], [{"Key": "role", "Value": "db"}])
        create("gamma", "gp3", 3, zones[0])
        wait_for(ec2, "volume_available", VolumeIds=list(made.values()))
        wait_for(ec2, "instance_running", InstanceIds=instance_ids)
        ec2.attach_volume(VolumeId=made["alpha"], InstanceId=instance_ids[0], Device="/dev/sdf")
        wait_attached(ec2, made["alpha"])
        yield {"ids": made, "tag": set_tag, "instance": instance_ids[0], "zones": (zones[0], zones[-1])}
    finally:
        cleanup_storage(ec2, instance_ids=instance_ids, volume_ids=made.values())


def names_matching(ec2, volume_set, *filters):
    response = ec2.describe_volumes(Filters=[{"Name": "tag:set", "Values": [volume_set["tag"]]}, *filters])
    by_id = {v: k for k, v in volume_set["ids"].items()}
    return sorted(by_id[v["VolumeId"]] for v in response["Volumes"])


def test_filter_everything_in_the_set(ec2, volume_set):
    assert names_matching(ec2, volume_set) == ["alpha", "beta", "gamma"]


def test_filter_volume_id(ec2, volume_set):
    f = {"Name": "volume-id", "Values": [volume_set["ids"]["alpha"], volume_set["ids"]["gamma"]]}
    assert names_matching(ec2, volume_set, f) == ["alpha", "gamma"]


def test_filter_status(ec2, volume_set):
    assert names_matching(ec2, volume_set, {"Name": "status", "Values": ["in-use"]}) == ["alpha"]
    assert names_matching(ec2, volume_set, {"Name": "status", "Values": ["available"]}) == ["beta", "gamma"]


def test_filter_attachment(ec2, volume_set):
    instance = volume_set["instance"]
    assert names_matching(ec2, volume_set, {"Name": "attachment.instance-id", "Values": [instance]}) == ["alpha"]
    assert names_matching(ec2, volume_set, {"Name": "attachment.status", "Values": ["attached"]}) == ["alpha"]
    assert names_matching(ec2, volume_set, {"Name": "attachment.device", "Values": ["/dev/sdf"]}) == ["alpha"]
    assert names_matching(
        ec2, volume_set, {"Name": "attachment.delete-on-termination", "Values": ["false"]}) == ["alpha"]
    # The instance's root volume carries no `set` tag, but it is attached to the same instance.
    everything_on_it = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance]}])
    assert volume_set["ids"]["alpha"] in ids(everything_on_it)


def test_filter_tags(ec2, volume_set):
    assert names_matching(ec2, volume_set, {"Name": "tag:role", "Values": ["db"]}) == ["beta"]
    assert names_matching(ec2, volume_set, {"Name": "tag:role", "Values": ["web", "db"]}) == ["alpha", "beta"]
    assert names_matching(ec2, volume_set, {"Name": "tag:Name", "Values": ["?amma"]}) == ["gamma"]
    assert names_matching(ec2, volume_set, {"Name": "tag-key", "Values": ["role"]}) == ["alpha", "beta"]


def test_filter_size_type_zone(ec2, volume_set):
    assert names_matching(ec2, volume_set, {"Name": "size", "Values": ["2"]}) == ["beta"]
    assert names_matching(ec2, volume_set, {"Name": "size", "Values": ["1", "3"]}) == ["alpha", "gamma"]
    assert names_matching(ec2, volume_set, {"Name": "volume-type", "Values": ["gp3"]}) == ["alpha", "gamma"]
    first, last = volume_set["zones"]
    if first != last:
        assert names_matching(ec2, volume_set, {"Name": "availability-zone", "Values": [last]}) == ["beta"]
    assert "alpha" in names_matching(ec2, volume_set, {"Name": "availability-zone", "Values": [first]})


def test_filters_combine_with_and(ec2, volume_set):
    assert names_matching(
        ec2, volume_set,
        {"Name": "volume-type", "Values": ["gp3"]},
        {"Name": "status", "Values": ["available"]},
    ) == ["gamma"]


def test_pagination(ec2, new_volume):
    tag = unique("page")
    made = sorted(
        new_volume(TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "page", "Value": tag}]}])["VolumeId"]
        for _ in range(7)
    )
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"MaxResults": 5, "Filters": [{"Name": "tag:page", "Values": [tag]}]}
        if token:
            kwargs["NextToken"] = token
        page = ec2.describe_volumes(**kwargs)
        assert len(page["Volumes"]) <= 5
        seen += [v["VolumeId"] for v in page["Volumes"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
        assert pages < 20, "pagination does not end"
    assert sorted(seen) == made, "each volume exactly once across the pages"
    # boto3's paginator walks the same tokens, over every volume.
    paginated = []
    for page in ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 5}):
        assert len(page["Volumes"]) <= 5
        paginated += [v["VolumeId"] for v in page["Volumes"]]
    assert len(paginated) == len(set(paginated))
    assert set(made) <= set(paginated)


# -- DeleteVolume ------------------------------------------------------------------------------

def test_delete_volume(ec2, new_volume):
    volume_id = new_volume()["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    ec2.delete_volume(VolumeId=volume_id)
    wait_for(ec2, "volume_deleted", VolumeIds=[volume_id])
    wait_until(lambda: volume_id not in ids(ec2.describe_volumes(
        Filters=[{"Name": "volume-id", "Values": [volume_id]}, {"Name": "status", "Values": ["available", "in-use"]}])),
        "the deleted volume to leave the listing")
    with expect_error("InvalidVolume.NotFound"):
        ec2.delete_volume(VolumeId=UNKNOWN_VOLUME_ID)


def test_delete_volume_dry_run(ec2, new_volume):
    volume_id = new_volume()["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    with expect_error("DryRunOperation", 412):
        ec2.delete_volume(VolumeId=volume_id, DryRun=True)
    assert volume_of(ec2, volume_id)["State"] == "available"


# -- AttachVolume / DetachVolume ---------------------------------------------------------------

def test_attach_and_detach(ec2, new_volume, running_instance):
    inst = running_instance()
    instance_id, zone = inst["InstanceId"], inst["Placement"]["AvailabilityZone"]
    volume_id = new_volume(AvailabilityZone=zone, Size=2)["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])

    att = ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    assert att["VolumeId"] == volume_id
    assert att["InstanceId"] == instance_id
    assert att["Device"] == "/dev/sdf"
    assert att["State"] in ("attaching", "attached")
    assert_recent(att["AttachTime"], "AttachTime")

    attachment = wait_attached(ec2, volume_id)
    vol = volume_of(ec2, volume_id)
    assert vol["State"] == "in-use"
    assert len(vol["Attachments"]) == 1
    assert attachment["VolumeId"] == volume_id
    assert attachment["InstanceId"] == instance_id
    assert attachment["Device"] == "/dev/sdf"
    assert attachment["DeleteOnTermination"] is False
    assert_recent(attachment["AttachTime"], "AttachTime")

    mapping = mappings_by_device(instance_of(ec2, instance_id)).get("/dev/sdf")
    assert mapping is not None, "DescribeInstances lists the attached volume"
    assert mapping["Ebs"]["VolumeId"] == volume_id
    assert mapping["Ebs"]["Status"] == "attached"
    assert mapping["Ebs"]["DeleteOnTermination"] is False
    assert_recent(mapping["Ebs"]["AttachTime"], "AttachTime")

    det = ec2.detach_volume(VolumeId=volume_id)
    assert det["VolumeId"] == volume_id
    assert det["InstanceId"] == instance_id
    assert det["Device"] == "/dev/sdf"
    assert det["State"] in ("detaching", "detached")
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    assert volume_of(ec2, volume_id)["Attachments"] == []
    wait_until(lambda: "/dev/sdf" not in mappings_by_device(instance_of(ec2, instance_id)),
               "the detached volume to leave the instance's block device mappings")

    # It can be attached again, under an xvd name this time.
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/xvdg")
    assert wait_attached(ec2, volume_id)["Device"] == "/dev/xvdg"
    ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/xvdg")
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])


def test_attach_to_a_stopped_instance(ec2, new_volume, running_instance):
    inst = running_instance()
    instance_id = inst["InstanceId"]
    ec2.stop_instances(InstanceIds=[instance_id])
    wait_for(ec2, "instance_stopped", InstanceIds=[instance_id])
    volume_id = new_volume(AvailabilityZone=inst["Placement"]["AvailabilityZone"])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdh")
    assert wait_attached(ec2, volume_id)["InstanceId"] == instance_id
    ec2.detach_volume(VolumeId=volume_id)
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])


def test_attach_errors(ec2, new_volume, running_instance, zones):
    inst = running_instance(Placement={"AvailabilityZone": zones[0]})
    instance_id = inst["InstanceId"]
    first = new_volume(AvailabilityZone=zones[0])["VolumeId"]
    second = new_volume(AvailabilityZone=zones[0])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[first, second])

    with expect_error("InvalidVolume.NotFound"):
        ec2.attach_volume(VolumeId=UNKNOWN_VOLUME_ID, InstanceId=instance_id, Device="/dev/sdf")
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.attach_volume(VolumeId=first, InstanceId=UNKNOWN_INSTANCE_ID, Device="/dev/sdf")
    # Not a device name EBS knows.
    with expect_error("InvalidParameterValue"):
        ec2.attach_volume(VolumeId=first, InstanceId=instance_id, Device="Disk_D")
    # The root device is taken.
    with expect_error("InvalidParameterValue"):
        ec2.attach_volume(VolumeId=first, InstanceId=instance_id, Device=inst["RootDeviceName"])

    ec2.attach_volume(VolumeId=first, InstanceId=instance_id, Device="/dev/sdf")
    wait_attached(ec2, first)
    # The volume is attached already (a second device on the same instance does not help).
    with expect_error("VolumeInUse"):
        ec2.attach_volume(VolumeId=first, InstanceId=instance_id, Device="/dev/sdg")
    # The device is in use by the first volume.
    with expect_error("InvalidParameterValue"):
        ec2.attach_volume(VolumeId=second, InstanceId=instance_id, Device="/dev/sdf")
    assert volume_of(ec2, second)["State"] == "available"


def test_attach_across_zones_is_a_zone_mismatch(ec2, new_volume, running_instance, zones):
    if len(zones) < 2:
        pytest.skip("the region has one zone")
    inst = running_instance(Placement={"AvailabilityZone": zones[0]})
    volume_id = new_volume(AvailabilityZone=zones[-1])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    with expect_error("InvalidVolume.ZoneMismatch"):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Device="/dev/sdf")
    assert volume_of(ec2, volume_id)["State"] == "available"


def test_attached_volume_cannot_be_deleted(ec2, new_volume, running_instance):
    inst = running_instance()
    volume_id = new_volume(AvailabilityZone=inst["Placement"]["AvailabilityZone"])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    ec2.attach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Device="/dev/sdf")
    wait_attached(ec2, volume_id)
    with expect_error("VolumeInUse"):
        ec2.delete_volume(VolumeId=volume_id)
    assert volume_of(ec2, volume_id)["State"] == "in-use"


def test_detach_errors(ec2, new_volume, running_instance, zones):
    volume_id = new_volume(AvailabilityZone=zones[0])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    with expect_error("IncorrectState"):
        ec2.detach_volume(VolumeId=volume_id)  # not attached
    with expect_error("InvalidVolume.NotFound"):
        ec2.detach_volume(VolumeId=UNKNOWN_VOLUME_ID)

    holder = running_instance(Placement={"AvailabilityZone": zones[0]})["InstanceId"]
    other = running_instance(Placement={"AvailabilityZone": zones[0]})["InstanceId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=holder, Device="/dev/sdf")
    wait_attached(ec2, volume_id)
    # Attached, but not to that instance.
    with expect_error("InvalidAttachment.NotFound"):
        ec2.detach_volume(VolumeId=volume_id, InstanceId=other)
    assert attachment_of(ec2, volume_id)["InstanceId"] == holder


def test_forced_detach(ec2, new_volume, running_instance):
    inst = running_instance()
    volume_id = new_volume(AvailabilityZone=inst["Placement"]["AvailabilityZone"])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    ec2.attach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Device="/dev/sdf")
    wait_attached(ec2, volume_id)
    det = ec2.detach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Force=True)
    assert det["State"] in ("detaching", "detached")
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])


def test_attach_and_detach_dry_run(ec2, new_volume, running_instance):
    inst = running_instance()
    volume_id = new_volume(AvailabilityZone=inst["Placement"]["AvailabilityZone"])["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    with expect_error("DryRunOperation", 412):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Device="/dev/sdf", DryRun=True)
    assert volume_of(ec2, volume_id)["State"] == "available"
    ec2.attach_volume(VolumeId=volume_id, InstanceId=inst["InstanceId"], Device="/dev/sdf")
    wait_attached(ec2, volume_id)
    with expect_error("DryRunOperation", 412):
        ec2.detach_volume(VolumeId=volume_id, DryRun=True)
    assert volume_of(ec2, volume_id)["State"] == "in-use"


# -- ModifyVolume ------------------------------------------------------------------------------

def test_modify_volume_grows_it(ec2, new_volume):
    volume_id = new_volume(Size=2, VolumeType="gp3")["VolumeId"]
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    # EBS volumes only grow. (Checked first: on AWS a volume is modified at most once per 6 hours.)
    with expect_error("InvalidParameterValue"):
        ec2.modify_volume(VolumeId=volume_id, Size=1)

    mod = ec2.modify_volume(VolumeId=volume_id, Size=4)["VolumeModification"]
    assert mod["VolumeId"] == volume_id
    assert mod["ModificationState"] in ("modifying", "optimizing", "completed")
    assert mod["TargetSize"] == 4
    assert mod["OriginalSize"] == 2
    assert mod["TargetVolumeType"] == "gp3"
    assert_recent(mod["StartTime"], "StartTime")

    described = ec2.describe_volumes_modifications(VolumeIds=[volume_id])["VolumesModifications"]
    assert [m["VolumeId"] for m in described] == [volume_id]
    assert described[0]["TargetSize"] == 4 and described[0]["OriginalSize"] == 2
    wait_until(lambda: volume_of(ec2, volume_id)["Size"] == 4, "the volume to report its new size")
    wait_until(
        lambda: ec2.describe_volumes_modifications(VolumeIds=[volume_id])["VolumesModifications"][0][
            "ModificationState"] in ("optimizing", "completed"),
        "the modification to leave `modifying`",
    )
    by_filter = ec2.describe_volumes_modifications(
        Filters=[{"Name": "volume-id", "Values": [volume_id]}])["VolumesModifications"]
    assert [m["VolumeId"] for m in by_filter] == [volume_id]


def test_modify_volume_errors(ec2):
    with expect_error("InvalidVolume.NotFound"):
        ec2.modify_volume(VolumeId=UNKNOWN_VOLUME_ID, Size=10)


# -- root volumes ------------------------------------------------------------------------------

def test_every_instance_has_an_ebs_root_volume(ec2, running_instance, image):
    inst = running_instance()
    instance_id = inst["InstanceId"]
    assert inst["RootDeviceType"] == "ebs"
    assert inst["RootDeviceName"] == image["RootDeviceName"]
    root = mappings_by_device(inst).get(image["RootDeviceName"])
    assert root is not None, f"no mapping for the root device in {inst.get('BlockDeviceMappings')}"
    ebs = root["Ebs"]
    assert VOLUME_ID_RE.match(ebs["VolumeId"]), ebs
    assert ebs["Status"] == "attached"
    # The image's mapping decides (true for every ordinary AMI).
    image_root = root_mapping_of(image)["Ebs"]
    assert ebs["DeleteOnTermination"] is image_root.get("DeleteOnTermination", True)
    assert_recent(ebs["AttachTime"], "AttachTime")

    vol = volume_of(ec2, ebs["VolumeId"])
    assert vol["State"] == "in-use"
    assert vol["AvailabilityZone"] == inst["Placement"]["AvailabilityZone"]
    assert vol["Size"] == image_root["VolumeSize"]
    if image_root.get("SnapshotId"):
        assert vol["SnapshotId"] == image_root["SnapshotId"]
    [attachment] = vol["Attachments"]
    assert attachment["InstanceId"] == instance_id
    assert attachment["Device"] == image["RootDeviceName"]
    assert attachment["State"] == "attached"
    assert attachment["DeleteOnTermination"] is ebs["DeleteOnTermination"]
    on_instance = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    assert ids(on_instance) == [ebs["VolumeId"]]


def test_block_device_mappings_at_launch(ec2, launch, storage, image):
    root_size = root_mapping_of(image)["Ebs"]["VolumeSize"] + 1
    instance_id = launch(BlockDeviceMappings=[
        {"DeviceName": image["RootDeviceName"], "Ebs": {"VolumeSize": root_size, "DeleteOnTermination": True}},
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "VolumeType": "gp3", "DeleteOnTermination": False}},
    ])["Instances"][0]["InstanceId"]
    wait_for(ec2, "instance_running", InstanceIds=[instance_id])
    wait_until(lambda: len(mappings_by_device(instance_of(ec2, instance_id))) == 2,
               "both volumes to be attached")
    mappings = mappings_by_device(instance_of(ec2, instance_id))
    root_id = mappings[image["RootDeviceName"]]["Ebs"]["VolumeId"]
    extra_id = storage.volume(mappings["/dev/sdf"]["Ebs"]["VolumeId"])
    assert mappings[image["RootDeviceName"]]["Ebs"]["DeleteOnTermination"] is True
    assert mappings["/dev/sdf"]["Ebs"]["DeleteOnTermination"] is False

    root, extra = volume_of(ec2, root_id), volume_of(ec2, extra_id)
    assert root["Size"] == root_size
    assert extra["Size"] == 1 and extra["VolumeType"] == "gp3"
    assert extra["Attachments"][0]["Device"] == "/dev/sdf"
    assert extra["Attachments"][0]["DeleteOnTermination"] is False

    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_for(ec2, "instance_terminated", InstanceIds=[instance_id])
    wait_for(ec2, "volume_deleted", VolumeIds=[root_id])  # DeleteOnTermination: gone with the instance
    wait_for(ec2, "volume_available", VolumeIds=[extra_id])  # kept, detached
    assert volume_of(ec2, extra_id)["Attachments"] == []


def test_root_volume_smaller_than_its_snapshot(ec2, launch, image, new_volume, new_snapshot, storage, run_id):
    image_id, root_device = image["ImageId"], image["RootDeviceName"]
    size = root_mapping_of(image)["Ebs"]["VolumeSize"]
    if size < 2:
        # Nothing is smaller than a 1 GiB root: register an image whose root snapshot is 2 GiB.
        volume_id = new_volume(Size=2)["VolumeId"]
        wait_for(ec2, "volume_available", VolumeIds=[volume_id])
        snapshot_id = new_snapshot(VolumeId=volume_id)["SnapshotId"]
        wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
        image_id, root_device, size = storage.image(ec2.register_image(
            Name=f"conf-{run_id}-{unique('root')}", RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
            Architecture="x86_64", VirtualizationType="hvm",
        )["ImageId"]), "/dev/xvda", 2
        wait_for(ec2, "image_available", ImageIds=[image_id])
    with expect_error("InvalidBlockDeviceMapping"):
        launch(ImageId=image_id, BlockDeviceMappings=[{"DeviceName": root_device, "Ebs": {"VolumeSize": size - 1}}])


def test_root_volume_kept_when_delete_on_termination_is_turned_off(ec2, running_instance, storage):
    inst = running_instance()
    instance_id, root_device = inst["InstanceId"], inst["RootDeviceName"]
    attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="blockDeviceMapping")
    by_device = {m["DeviceName"]: m for m in attr["BlockDeviceMappings"]}
    root_id = storage.volume(by_device[root_device]["Ebs"]["VolumeId"])

    ec2.modify_instance_attribute(InstanceId=instance_id, BlockDeviceMappings=[
        {"DeviceName": root_device, "Ebs": {"DeleteOnTermination": False}}])
    attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="blockDeviceMapping")
    assert {m["DeviceName"]: m for m in attr["BlockDeviceMappings"]}[root_device]["Ebs"]["DeleteOnTermination"] is False
    assert volume_of(ec2, root_id)["Attachments"][0]["DeleteOnTermination"] is False

    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_for(ec2, "instance_terminated", InstanceIds=[instance_id])
    wait_for(ec2, "volume_available", VolumeIds=[root_id])
