"""DescribeNetworkAcls: every VPC has its default network ACL (allow all, then AWS's catch-all
deny, both ways), associated with each of its subnets. Terraform's aws_vpc reads it."""

import pytest

from support import expect_error, unique


@pytest.fixture
def vpc_with_subnets(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.219.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.219.{i}.0/24")["Subnet"]["SubnetId"] for i in range(2)]
    yield vpc, subnets
    for s in subnets:
        ec2.delete_subnet(SubnetId=s)
    ec2.delete_vpc(VpcId=vpc)


def _default_acl(ec2, vpc):
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                              {"Name": "default", "Values": ["true"]}])["NetworkAcls"]
    assert len(acls) == 1, acls
    return acls[0]


def test_every_vpc_has_its_default_acl(ec2, vpc_with_subnets, account_id):
    vpc, subnets = vpc_with_subnets
    acl = _default_acl(ec2, vpc)
    assert acl["IsDefault"] and acl["VpcId"] == vpc and acl["OwnerId"] == account_id
    assert acl["NetworkAclId"].startswith("acl-")
    entries = {(e["RuleNumber"], e["Egress"], e["RuleAction"], e["Protocol"], e["CidrBlock"]) for e in acl["Entries"]}
    assert entries == {(100, False, "allow", "-1", "0.0.0.0/0"), (100, True, "allow", "-1", "0.0.0.0/0"),
                       (32767, False, "deny", "-1", "0.0.0.0/0"), (32767, True, "deny", "-1", "0.0.0.0/0")}
    assert sorted(a["SubnetId"] for a in acl["Associations"]) == sorted(subnets)
    assert all(a["NetworkAclId"] == acl["NetworkAclId"] and a["NetworkAclAssociationId"].startswith("aclassoc-")
               for a in acl["Associations"])
    # The same association id on every read.
    again = _default_acl(ec2, vpc)
    assert again["Associations"] == acl["Associations"]
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    assert _default_acl(ec2, default_vpc)["Associations"], "the default VPC's subnets are associated"


def test_network_acl_filters_ids_and_tags(ec2, vpc_with_subnets):
    vpc, subnets = vpc_with_subnets
    acl_id = _default_acl(ec2, vpc)["NetworkAclId"]
    by_id = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"]
    assert [a["NetworkAclId"] for a in by_id] == [acl_id]
    by_subnet = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnets[1]]}])["NetworkAcls"]
    assert [a["NetworkAclId"] for a in by_subnet] == [acl_id]
    for name, value in [("entry.rule-number", "32767"), ("entry.rule-action", "deny"), ("entry.egress", "true"),
                        ("entry.cidr", "0.0.0.0/0"), ("entry.protocol", "-1"), ("network-acl-id", acl_id),
                        ("association.network-acl-id", acl_id)]:
        got = ec2.describe_network_acls(Filters=[{"Name": name, "Values": [value]},
                                                 {"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"]
        assert [a["NetworkAclId"] for a in got] == [acl_id], name
    tag = unique("acl")
    ec2.create_tags(Resources=[acl_id], Tags=[{"Key": "Name", "Value": tag}])
    tagged = ec2.describe_network_acls(Filters=[{"Name": "tag:Name", "Values": [tag]}])["NetworkAcls"]
    assert [a["NetworkAclId"] for a in tagged] == [acl_id]
    assert tagged[0]["Tags"] == [{"Key": "Name", "Value": tag}]
    types = {t["ResourceType"] for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [acl_id]}])["Tags"]}
    assert types == {"network-acl"}


def test_network_acl_errors_and_pages(ec2, ec2_unvalidated):
    with expect_error("InvalidNetworkAclID.NotFound") as err:
        ec2.describe_network_acls(NetworkAclIds=["acl-0123456789abcdef0", "acl-0123456789abcdef1"])
    assert "acl-0123456789abcdef0" in str(err.value) and "acl-0123456789abcdef1" in str(err.value)
    with expect_error("InvalidNetworkAclID.Malformed"):
        ec2.describe_network_acls(NetworkAclIds=["acl-nope"])
    with expect_error("InvalidParameterValue"):
        ec2.describe_network_acls(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    with expect_error("DryRunOperation", 412):
        ec2.describe_network_acls(DryRun=True)
    # AWS's quota is 5 VPCs a region, the default one included: pages are walked in the
    # testkit suite with the quota raised; here, one full page and what MaxResults refuses.
    made = []
    try:
        for i in range(3):
            made.append(ec2.create_vpc(CidrBlock=f"10.22{i}.0.0/16")["Vpc"]["VpcId"])
        pages = list(ec2.get_paginator("describe_network_acls").paginate(PaginationConfig={"PageSize": 5}))
        ids = [a["NetworkAclId"] for p in pages for a in p["NetworkAcls"]]
        assert len(ids) == len(set(ids)) >= 4
        with expect_error("InvalidParameterValue"):
            ec2_unvalidated.describe_network_acls(MaxResults=4)
    finally:
        for v in made:
            ec2.delete_vpc(VpcId=v)
    # Deleting a VPC deletes its default ACL.
    assert not ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": made}])["NetworkAcls"]
