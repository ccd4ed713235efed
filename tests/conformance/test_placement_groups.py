"""Placement groups (Create/Describe/DeletePlacementGroup(s)), the kind added through the
generic Describe path in six source files, and DescribeSnapshotTierStatus, a Describe over the
snapshots kind added in three. Terraform's aws_placement_group creates a group, waits for it
to be `available`, reads it by name and, after deleting it, waits for
InvalidPlacementGroup.Unknown."""

import pytest

from support import expect_error, unique


@pytest.fixture
def group(ec2):
    made = []

    def make(**params):
        params.setdefault("GroupName", unique("pg"))
        params.setdefault("Strategy", "spread")
        g = ec2.create_placement_group(**params)["PlacementGroup"]
        made.append(g["GroupName"])
        return g

    yield make
    for name in made:
        try:
            ec2.delete_placement_group(GroupName=name)
        except ec2.exceptions.ClientError:
            pass


def test_create_read_delete_as_terraform_does(ec2, group, account_id):
    g = group(Strategy="partition", PartitionCount=3,
              TagSpecifications=[{"ResourceType": "placement-group", "Tags": [{"Key": "Name", "Value": "web"}]}])
    assert g["GroupId"].startswith("pg-") and g["State"] == "available" and g["PartitionCount"] == 3
    assert g["GroupArn"].endswith(f":{account_id}:placement-group/{g['GroupName']}")
    read = ec2.describe_placement_groups(GroupNames=[g["GroupName"]])["PlacementGroups"]
    assert [(x["GroupId"], x["Strategy"], x["Tags"]) for x in read] == [(g["GroupId"], "partition", [{"Key": "Name", "Value": "web"}])]
    assert ec2.describe_placement_groups(GroupIds=[g["GroupId"]])["PlacementGroups"][0]["GroupName"] == g["GroupName"]
    ec2.delete_placement_group(GroupName=g["GroupName"])
    with expect_error("InvalidPlacementGroup.Unknown"):
        ec2.describe_placement_groups(GroupNames=[g["GroupName"]])
    with expect_error("InvalidPlacementGroup.Unknown"):
        ec2.delete_placement_group(GroupName=g["GroupName"])


def test_settings_and_errors(ec2, group):
    spread = group()
    assert spread["SpreadLevel"] == "rack" and "PartitionCount" not in spread
    assert group(Strategy="partition")["PartitionCount"] == 2
    with expect_error("InvalidPlacementGroup.Duplicate"):
        ec2.create_placement_group(GroupName=spread["GroupName"], Strategy="cluster")
    with expect_error("InvalidParameterValue"):
        ec2.create_placement_group(GroupName=unique("pg"), Strategy="scattered")
    with expect_error("InvalidParameterValue"):
        ec2.create_placement_group(GroupName=unique("pg"), Strategy="partition", PartitionCount=8)
    with expect_error("InvalidParameterCombination"):
        ec2.create_placement_group(GroupName=unique("pg"), Strategy="cluster", PartitionCount=2)
    with expect_error("DryRunOperation", 412):
        ec2.create_placement_group(GroupName=unique("pg"), Strategy="cluster", DryRun=True)
    with expect_error("InvalidPlacementGroupId.Malformed"):
        ec2.describe_placement_groups(GroupIds=["pg-xyz"])
    with expect_error("InvalidPlacementGroup.Unknown"):
        ec2.describe_placement_groups(GroupIds=["pg-0123456789abcdef0"])


def test_filters_and_tags(ec2, group):
    a = group(Strategy="cluster")
    b = group(Strategy="spread", SpreadLevel="host")
    ec2.create_tags(Resources=[b["GroupId"]], Tags=[{"Key": "team", "Value": "blue"}])

    def names(*filters):
        return {g["GroupName"] for g in ec2.describe_placement_groups(Filters=list(filters))["PlacementGroups"]}

    mine = {a["GroupName"], b["GroupName"]}
    assert names({"Name": "strategy", "Values": ["cluster"]}) & mine == {a["GroupName"]}
    assert names({"Name": "spread-level", "Values": ["host"]}) & mine == {b["GroupName"]}
    assert names({"Name": "group-name", "Values": [a["GroupName"]]}) == {a["GroupName"]}
    assert names({"Name": "group-arn", "Values": [b["GroupArn"]]}) == {b["GroupName"]}
    assert names({"Name": "state", "Values": ["available"]}) >= mine
    assert names({"Name": "tag:team", "Values": ["blue"]}) == {b["GroupName"]}
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [b["GroupId"]]}])["Tags"]
    assert [(t["ResourceType"], t["Key"]) for t in tags] == [("placement-group", "team")]
    with expect_error("InvalidParameterValue"):
        ec2.describe_placement_groups(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


def test_snapshot_tier_status_pages_and_filters(ec2, new_volume, new_snapshot):
    volume = new_volume()["VolumeId"]
    snaps = [new_snapshot(VolumeId=volume)["SnapshotId"] for _ in range(6)]
    seen, token = [], None
    while True:
        page = ec2.describe_snapshot_tier_status(MaxResults=5, **({"NextToken": token} if token else {}))
        assert len(page["SnapshotTierStatuses"]) <= 5
        seen += [s["SnapshotId"] for s in page["SnapshotTierStatuses"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) and set(snaps) <= set(seen)
    mine = ec2.describe_snapshot_tier_status(Filters=[{"Name": "volume-id", "Values": [volume]}])["SnapshotTierStatuses"]
    assert sorted(s["SnapshotId"] for s in mine) == sorted(snaps)
    assert all(s["StorageTier"] == "standard" and s["VolumeId"] == volume for s in mine)
    one = ec2.describe_snapshot_tier_status(Filters=[{"Name": "snapshot-id", "Values": [snaps[0]]}])["SnapshotTierStatuses"]
    assert [s["SnapshotId"] for s in one] == [snaps[0]]
    none = ec2.describe_snapshot_tier_status(Filters=[{"Name": "last-tiering-operation", "Values": ["archival-completed"]}])
    assert none["SnapshotTierStatuses"] == []
    with expect_error("InvalidParameterValue"):
        ec2.describe_snapshot_tier_status(MaxResults=4)
