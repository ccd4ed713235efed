"""Every resource with an id takes CreateTags and DeleteTags, shows in DescribeTags with its
resource type, and answers tag filters in its own Describe call."""

import pytest

from support import expect_error, unique


@pytest.fixture
def network(ec2, run_id):
    """A VPC with a subnet, a security group with a rule, an internet gateway, a route table
    and an Elastic IP allocation; removed afterwards."""
    vpc = ec2.create_vpc(CidrBlock="10.217.0.0/16")["Vpc"]["VpcId"]
    made = {"vpc": vpc}
    try:
        made["subnet"] = ec2.create_subnet(VpcId=vpc, CidrBlock="10.217.1.0/24")["Subnet"]["SubnetId"]
        made["security-group"] = ec2.create_security_group(
            GroupName=unique("tagged"), Description="tags", VpcId=vpc)["GroupId"]
        rules = ec2.authorize_security_group_ingress(
            GroupId=made["security-group"], IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                            "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
        made["security-group-rule"] = rules["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        made["internet-gateway"] = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        made["route-table"] = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        made["elastic-ip"] = ec2.allocate_address(Domain="vpc")["AllocationId"]
        yield made
    finally:
        if "elastic-ip" in made:
            ec2.release_address(AllocationId=made["elastic-ip"])
        if "route-table" in made:
            ec2.delete_route_table(RouteTableId=made["route-table"])
        if "internet-gateway" in made:
            ec2.delete_internet_gateway(InternetGatewayId=made["internet-gateway"])
        if "security-group" in made:
            ec2.delete_security_group(GroupId=made["security-group"])
        if "subnet" in made:
            ec2.delete_subnet(SubnetId=made["subnet"])
        ec2.delete_vpc(VpcId=vpc)


def _described_by_tag(ec2, kind, key, value):
    f = [{"Name": f"tag:{key}", "Values": [value]}]
    if kind == "vpc":
        return [v["VpcId"] for v in ec2.describe_vpcs(Filters=f)["Vpcs"]]
    if kind == "subnet":
        return [s["SubnetId"] for s in ec2.describe_subnets(Filters=f)["Subnets"]]
    if kind == "security-group":
        return [g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]]
    if kind == "security-group-rule":
        return [r["SecurityGroupRuleId"] for r in ec2.describe_security_group_rules(Filters=f)["SecurityGroupRules"]]
    if kind == "internet-gateway":
        return [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=f)["InternetGateways"]]
    if kind == "route-table":
        return [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=f)["RouteTables"]]
    if kind == "elastic-ip":
        return [a["AllocationId"] for a in ec2.describe_addresses(Filters=f)["Addresses"]]
    raise AssertionError(kind)


def test_network_resources_take_tags(ec2, network):
    value = unique("v")
    for kind, rid in network.items():
        ec2.create_tags(Resources=[rid], Tags=[{"Key": "corral-kind", "Value": value}, {"Key": "gone", "Value": "x"}])
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
        assert {(t["Key"], t["Value"]) for t in tags} >= {("corral-kind", value), ("gone", "x")}, kind
        assert {t["ResourceType"] for t in tags} == {kind}, tags
        assert _described_by_tag(ec2, kind, "corral-kind", value) == [rid], kind
        ec2.delete_tags(Resources=[rid], Tags=[{"Key": "gone"}])
        keys = {t["Key"] for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]}
        assert "gone" not in keys and "corral-kind" in keys, kind
    by_type = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["elastic-ip"]},
                                         {"Name": "value", "Values": [value]}])["Tags"]
    assert [t["ResourceId"] for t in by_type] == [network["elastic-ip"]]


@pytest.mark.parametrize("rid,code", [
    ("vpc-0123456789abcdef0", "InvalidVpcID.NotFound"),
    ("vpc-zz", "InvalidVpcID.Malformed"),
    ("subnet-0123456789abcdef0", "InvalidSubnetID.NotFound"),
    ("sg-0123456789abcdef0", "InvalidGroup.NotFound"),
    ("igw-0123456789abcdef0", "InvalidInternetGatewayID.NotFound"),
    ("rtb-0123456789abcdef0", "InvalidRouteTableID.NotFound"),
    ("eipalloc-0123456789abcdef0", "InvalidAllocationID.NotFound"),
    ("sgr-0123456789abcdef0", "InvalidSecurityGroupRuleId.NotFound"),
    ("eni-0123456789abcdef0", "InvalidNetworkInterfaceID.NotFound"),
    ("bogus-0123", "InvalidID"),
])
def test_tagging_unknown_or_malformed_ids(ec2, rid, code):
    with expect_error(code):
        ec2.create_tags(Resources=[rid], Tags=[{"Key": "k", "Value": "v"}])


def test_not_found_names_every_missing_id(ec2):
    a, b = "vpc-0123456789abcdef0", "vpc-0123456789abcdef1"
    with expect_error("InvalidVpcID.NotFound") as err:
        ec2.create_tags(Resources=[a, b], Tags=[{"Key": "k", "Value": "v"}])
    assert a in str(err.value) and b in str(err.value)
