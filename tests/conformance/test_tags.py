"""CreateTags, DeleteTags, DescribeTags: EC2's semantics for overwrite, value-matched delete,
filters and pagination."""

import pytest

from support import RUN_TAG_KEY, expect_error, instance_ids, unique


def tags_of(ec2, resource_id):
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
    return {t["Key"]: t["Value"] for t in tags if t["Key"] != RUN_TAG_KEY}


@pytest.fixture
def instance(launch):
    return instance_ids(launch())[0]


def test_create_overwrites_and_describe_reports(ec2, instance):
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": "one"}, {"Key": "blank", "Value": ""}])
    assert tags_of(ec2, instance) == {"Name": "one", "blank": ""}
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": "two"}])
    assert tags_of(ec2, instance) == {"Name": "two", "blank": ""}
    described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert {t["Key"]: t["Value"] for t in described["Tags"] if t["Key"] != RUN_TAG_KEY} == {"Name": "two", "blank": ""}


def test_tags_apply_to_several_resources_at_once(ec2, launch):
    a, b = instance_ids(launch(MinCount=2))
    ec2.create_tags(Resources=[a, b], Tags=[{"Key": "tier", "Value": "front"}])
    assert tags_of(ec2, a)["tier"] == "front"
    assert tags_of(ec2, b)["tier"] == "front"
    ec2.delete_tags(Resources=[a, b], Tags=[{"Key": "tier"}])
    assert "tier" not in tags_of(ec2, a) and "tier" not in tags_of(ec2, b)


def test_delete_with_a_value_only_deletes_on_match(ec2, instance):
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": "keep"}, {"Key": "blank", "Value": ""}])
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": "other"}])
    assert tags_of(ec2, instance)["Name"] == "keep"
    # An empty value deletes only a tag whose value is empty.
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": ""}])
    assert tags_of(ec2, instance)["Name"] == "keep"
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "blank", "Value": ""}])
    assert "blank" not in tags_of(ec2, instance)
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "Name", "Value": "keep"}])
    assert "Name" not in tags_of(ec2, instance)


def test_delete_by_key_alone(ec2, instance):
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "a"}])
    assert tags_of(ec2, instance) == {"b": "2"}


def test_delete_without_tags_removes_all(ec2, instance):
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ec2.delete_tags(Resources=[instance])
    remaining = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance]}])["Tags"]
    assert remaining == []


def test_deleting_an_absent_tag_is_fine(ec2, instance):
    ec2.delete_tags(Resources=[instance], Tags=[{"Key": "never-set"}])


def test_describe_tags_filters(ec2, launch, key_name):
    marker = unique("tagf")
    a, b = instance_ids(launch(MinCount=2))
    ec2.create_tags(Resources=[a], Tags=[{"Key": marker, "Value": "alpha"}])
    ec2.create_tags(Resources=[b], Tags=[{"Key": marker, "Value": "beta"}])
    key = ec2.create_key_pair(KeyName=key_name("tagf"), KeyType="ed25519")["KeyPairId"]
    ec2.create_tags(Resources=[key], Tags=[{"Key": marker, "Value": "alpha"}])

    def found(*filters):
        tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": [marker]}, *filters])["Tags"]
        return sorted((t["ResourceId"], t["ResourceType"], t["Value"]) for t in tags)

    assert found() == sorted([(a, "instance", "alpha"), (b, "instance", "beta"), (key, "key-pair", "alpha")])
    assert found({"Name": "value", "Values": ["alpha"]}) == sorted([(a, "instance", "alpha"), (key, "key-pair", "alpha")])
    assert found({"Name": "value", "Values": ["b*"]}) == [(b, "instance", "beta")]
    assert found({"Name": "resource-id", "Values": [b]}) == [(b, "instance", "beta")]
    assert found({"Name": "resource-type", "Values": ["key-pair"]}) == [(key, "key-pair", "alpha")]
    assert found({"Name": "resource-type", "Values": ["instance"]}) == sorted([(a, "instance", "alpha"), (b, "instance", "beta")])
    # And the key pair reports its tag too.
    pair = ec2.describe_key_pairs(KeyPairIds=[key])["KeyPairs"][0]
    assert {"Key": marker, "Value": "alpha"} in pair["Tags"]


def test_describe_tags_pagination(ec2, launch):
    marker = unique("tagp")
    ids = instance_ids(launch(MinCount=7))
    ec2.create_tags(Resources=ids, Tags=[{"Key": marker, "Value": "x"}])
    pages = list(ec2.get_paginator("describe_tags").paginate(
        Filters=[{"Name": "key", "Values": [marker]}], PaginationConfig={"PageSize": 5}))
    sizes = [len(p["Tags"]) for p in pages]
    assert all(n <= 5 for n in sizes) and len([n for n in sizes if n]) >= 2, sizes
    assert sorted(t["ResourceId"] for p in pages for t in p["Tags"]) == sorted(ids)


def test_unicode_and_reserved_characters_round_trip(ec2, instance):
    key, value = "wé ird+/=:@", "a b+c/d=é ✓ %20 &x=y * ~"
    ec2.create_tags(Resources=[instance], Tags=[{"Key": key, "Value": value}])
    assert tags_of(ec2, instance)[key] == value
    found = ec2.describe_instances(Filters=[{"Name": f"tag:{key}", "Values": [value]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [instance]


def test_xml_special_characters_round_trip(ec2, launch):
    key, value = "x<y>&'\"", "<b>&amp;</b> \"q\" 'a'"
    reservation = launch(TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": key, "Value": value}]}])
    i = reservation["Instances"][0]
    assert {"Key": key, "Value": value} in i["Tags"]
    assert tags_of(ec2, i["InstanceId"])[key] == value


def test_tag_length_limits(ec2, instance):
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "k" * 128, "Value": "v" * 256}])
    with expect_error("InvalidParameterValue"):
        ec2.create_tags(Resources=[instance], Tags=[{"Key": "k" * 129, "Value": "v"}])
    with expect_error("InvalidParameterValue"):
        ec2.create_tags(Resources=[instance], Tags=[{"Key": "k", "Value": "v" * 257}])


def test_fifty_tags_fit_and_can_be_overwritten_at_the_limit(ec2, launch):
    i = instance_ids(launch(TagSpecifications=[{"ResourceType": "instance", "Tags": []}]))[0]
    ec2.delete_tags(Resources=[i])  # drop the run tag: count from zero
    ec2.create_tags(Resources=[i], Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(50)])
    # Overwriting an existing key adds nothing, so it works at the limit.
    ec2.create_tags(Resources=[i], Tags=[{"Key": "k3", "Value": "new"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [i]}], MaxResults=1000)["Tags"]
    assert len(tags) == 50
    assert {t["Key"]: t["Value"] for t in tags}["k3"] == "new"


def test_a_51st_tag_is_tag_limit_exceeded(ec2, instance):
    ec2.create_tags(Resources=[instance], Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(49)])
    with expect_error("TagLimitExceeded"):
        ec2.create_tags(Resources=[instance], Tags=[{"Key": "one-too-many", "Value": "v"}])


def test_tag_errors(ec2, ec2_unvalidated, instance):
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.create_tags(Resources=["i-0123456789abcdef0"], Tags=[{"Key": "k", "Value": "v"}])
    with expect_error("InvalidInstanceID.Malformed"):
        ec2.create_tags(Resources=["i-12"], Tags=[{"Key": "k", "Value": "v"}])
    with expect_error("InvalidParameterValue"):
        ec2.create_tags(Resources=[instance], Tags=[{"Key": "aws:reserved", "Value": "v"}])
    with expect_error("MissingParameter"):
        ec2_unvalidated.create_tags(Resources=[instance])
    with expect_error("DryRunOperation", 412):
        ec2.create_tags(Resources=[instance], Tags=[{"Key": "dry", "Value": "v"}], DryRun=True)
    assert "dry" not in tags_of(ec2, instance)
