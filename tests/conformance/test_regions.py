"""DescribeRegions, DescribeAvailabilityZones, DescribeAccountAttributes, DescribeInstanceTypes."""

import pytest

from support import expect_error


def test_describe_regions_lists_the_endpoint_region(ec2, endpoint):
    regions = ec2.describe_regions()["Regions"]
    names = [r["RegionName"] for r in regions]
    assert endpoint.region in names
    for r in regions:
        assert {"RegionName", "Endpoint", "OptInStatus"} <= r.keys(), r


def test_describe_regions_by_name_and_by_filter(ec2, endpoint):
    by_name = ec2.describe_regions(RegionNames=[endpoint.region])["Regions"]
    assert [r["RegionName"] for r in by_name] == [endpoint.region]
    by_filter = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": [endpoint.region]}])["Regions"]
    assert [r["RegionName"] for r in by_filter] == [endpoint.region]


def test_availability_zones_belong_to_the_region(ec2, endpoint):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert zones, "a region has at least one zone"
    for z in zones:
        assert {"ZoneName", "ZoneId", "RegionName", "State", "ZoneType", "Messages"} <= z.keys(), z
        assert z["RegionName"] == endpoint.region
        assert z["ZoneName"].startswith(endpoint.region)
        assert isinstance(z["Messages"], list)
    assert len({z["ZoneName"] for z in zones}) == len(zones)
    assert len({z["ZoneId"] for z in zones}) == len(zones)


def test_availability_zone_filters_and_names(ec2, zones):
    last = zones[-1]
    by_name = ec2.describe_availability_zones(ZoneNames=[last])["AvailabilityZones"]
    assert [z["ZoneName"] for z in by_name] == [last]
    by_filter = ec2.describe_availability_zones(Filters=[{"Name": "zone-name", "Values": [last]}])
    assert [z["ZoneName"] for z in by_filter["AvailabilityZones"]] == [last]
    available = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])
    assert {z["ZoneName"] for z in available["AvailabilityZones"]} == set(zones)


def test_unknown_availability_zone_name_is_refused(ec2):
    with expect_error("InvalidParameterValue"):
        ec2.describe_availability_zones(ZoneNames=["nowhere-9z"])


def test_account_attributes(ec2):
    attrs = {
        a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
        for a in ec2.describe_account_attributes()["AccountAttributes"]
    }
    assert "VPC" in attrs["supported-platforms"]
    assert "default-vpc" in attrs
    assert int(attrs["max-instances"][0]) > 0
    one = ec2.describe_account_attributes(AttributeNames=["max-instances"])["AccountAttributes"]
    assert [a["AttributeName"] for a in one] == ["max-instances"]


def test_instance_type_catalogue_has_sizes(ec2, instance_type):
    described = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    assert [t["InstanceType"] for t in described] == [instance_type]
    t = described[0]
    assert t["VCpuInfo"]["DefaultVCpus"] >= 1
    assert t["MemoryInfo"]["SizeInMiB"] >= 256
    assert "x86_64" in t["ProcessorInfo"]["SupportedArchitectures"]
    assert isinstance(t["CurrentGeneration"], bool)


def test_t3_nano_has_the_size_aws_gives_it(ec2):
    described = ec2.describe_instance_types(InstanceTypes=["t3.nano"])["InstanceTypes"][0]
    assert described["VCpuInfo"]["DefaultVCpus"] == 2
    assert described["MemoryInfo"]["SizeInMiB"] == 512


def test_instance_type_filters(ec2):
    t3 = ec2.describe_instance_types(Filters=[{"Name": "instance-type", "Values": ["t3.*"]}])["InstanceTypes"]
    assert t3 and all(t["InstanceType"].startswith("t3.") for t in t3)
    assert "t3.nano" in {t["InstanceType"] for t in t3}
    two = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}])
    assert two["InstanceTypes"] and all(t["VCpuInfo"]["DefaultVCpus"] == 2 for t in two["InstanceTypes"])
    mem = ec2.describe_instance_types(Filters=[{"Name": "memory-info.size-in-mib", "Values": ["512"]}])
    assert "t3.nano" in {t["InstanceType"] for t in mem["InstanceTypes"]}
    assert all(t["MemoryInfo"]["SizeInMiB"] == 512 for t in mem["InstanceTypes"])


def test_instance_type_pagination_yields_each_type_once(ec2):
    big_pages = ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 100})
    everything = [t["InstanceType"] for p in big_pages for t in p["InstanceTypes"]]
    assert len(everything) > 5, "the catalogue should be larger than one page"
    pages = list(ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 5}))
    assert len(pages) >= 2
    assert all(len(p["InstanceTypes"]) <= 5 for p in pages)
    paged = [t["InstanceType"] for p in pages for t in p["InstanceTypes"]]
    assert sorted(paged) == sorted(everything)
    assert len(set(paged)) == len(paged)


def test_unknown_instance_type_is_invalid_instance_type(ec2):
    with expect_error("InvalidInstanceType"):
        ec2.describe_instance_types(InstanceTypes=["bogus.nano"])


# --------------------------------------------------------------------------------------------
# Regions are worlds (a sim cloud serves every region of the aws partition)


def _client_in(endpoint, region):
    import boto3
    from botocore.config import Config
    return boto3.session.Session(
        aws_access_key_id=endpoint.access_key, aws_secret_access_key=endpoint.secret_key, region_name=region,
    ).client("ec2", endpoint_url=endpoint.url, config=Config(retries={"max_attempts": 1}))


def _serves(ec2, region):
    return any(r["RegionName"] == region for r in ec2.describe_regions()["Regions"])


def test_all_regions_are_botocores_aws_partition(ec2, endpoint):
    import boto3
    listed = {r["RegionName"]: r["OptInStatus"] for r in ec2.describe_regions(AllRegions=True)["Regions"]}
    aws = set(boto3.session.Session().get_available_regions("ec2"))
    assert aws <= set(listed), sorted(aws - set(listed))
    assert set(listed) - aws <= {endpoint.region}
    assert set(listed.values()) <= {"opt-in-not-required", "opted-in", "not-opted-in"}


def test_clients_in_two_regions_see_nothing_of_each_other(ec2, endpoint, run_id):
    if not (_serves(ec2, "us-west-2") and _serves(ec2, "eu-west-1")):
        pytest.skip("the endpoint does not serve us-west-2 and eu-west-1")
    west, eu = _client_in(endpoint, "us-west-2"), _client_in(endpoint, "eu-west-1")
    zones = west.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"][:-1] for z in zones] == ["us-west-2"] * len(zones)
    assert zones[0]["ZoneId"] == "usw2-az1"
    assert all(z["RegionName"] == "us-west-2" for z in zones)
    default_west = west.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    default_eu = eu.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert len(default_west) == 1 and len(default_eu) == 1
    assert default_west[0]["VpcId"] != default_eu[0]["VpcId"]
    name = f"regional-{run_id}"
    west.create_key_pair(KeyName=name)
    try:
        with expect_error("InvalidKeyPair.NotFound"):
            eu.describe_key_pairs(KeyNames=[name])
        vol = west.create_volume(Size=1, AvailabilityZone="us-west-2b")["VolumeId"]
        try:
            with expect_error("InvalidVolume.NotFound"):
                eu.describe_volumes(VolumeIds=[vol])
            assert vol not in [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]]
        finally:
            west.delete_volume(VolumeId=vol)
        images = eu.describe_images(Filters=[{"Name": "name", "Values": ["corral-minimal"]}])["Images"]
        assert len(images) == 1, "each region has the default images"
    finally:
        west.delete_key_pair(KeyName=name)


def test_a_region_of_no_partition_is_refused(endpoint):
    from botocore.exceptions import ClientError
    c = _client_in(endpoint, "mars-north-9")
    with pytest.raises(ClientError) as err:
        c.describe_vpcs()
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
