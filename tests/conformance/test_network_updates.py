"""Updates Terraform makes in place: ReplaceRoute, ReplaceRouteTableAssociation, rule
descriptions (UpdateSecurityGroupRuleDescriptionsIngress/Egress), ModifySecurityGroupRules,
an Elastic IP's reverse DNS name (Describe/Modify/ResetAddressesAttribute), and protocols
stored as what they mean."""

import pytest

from support import expect_error, unique


@pytest.fixture
def vpc(ec2):
    v = ec2.create_vpc(CidrBlock="10.231.0.0/16")["Vpc"]["VpcId"]
    made = {"vpc": v, "subnet": ec2.create_subnet(VpcId=v, CidrBlock="10.231.1.0/24")["Subnet"]["SubnetId"]}
    made["igw"] = [ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"] for _ in range(2)]
    made["tables"] = [ec2.create_route_table(VpcId=v)["RouteTable"]["RouteTableId"] for _ in range(2)]
    made["group"] = ec2.create_security_group(GroupName=unique("upd"), Description="updates", VpcId=v)["GroupId"]
    yield made
    ec2.delete_security_group(GroupId=made["group"])
    for t in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [v]}])["RouteTables"]:
        for a in t["Associations"]:
            if not a["Main"]:
                ec2.disassociate_route_table(AssociationId=a["RouteTableAssociationId"])
    for t in made["tables"]:
        ec2.delete_route_table(RouteTableId=t)
    for g in made["igw"]:
        for att in ec2.describe_internet_gateways(InternetGatewayIds=[g])["InternetGateways"][0]["Attachments"]:
            ec2.detach_internet_gateway(InternetGatewayId=g, VpcId=att["VpcId"])
        ec2.delete_internet_gateway(InternetGatewayId=g)
    ec2.delete_subnet(SubnetId=made["subnet"])
    ec2.delete_vpc(VpcId=v)


def _routes(ec2, table):
    t = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
    return {r["DestinationCidrBlock"]: r["GatewayId"] for r in t["Routes"]}


def test_replace_route(ec2, vpc):
    igw1, igw2 = vpc["igw"]
    ec2.attach_internet_gateway(InternetGatewayId=igw1, VpcId=vpc["vpc"])
    table = vpc["tables"][0]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw1)
    with expect_error("InvalidParameterValue"):  # igw2 is not attached to this VPC
        ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw2)
    ec2.detach_internet_gateway(InternetGatewayId=igw1, VpcId=vpc["vpc"])
    ec2.attach_internet_gateway(InternetGatewayId=igw2, VpcId=vpc["vpc"])
    ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw2)
    assert _routes(ec2, table)["0.0.0.0/0"] == igw2
    with expect_error("InvalidParameterValue"):
        ec2.replace_route(RouteTableId=table, DestinationCidrBlock="192.0.2.0/24", GatewayId=igw2)
    with expect_error("DryRunOperation", 412):
        ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw2, DryRun=True)
    with expect_error("InvalidRouteTableID.NotFound"):
        ec2.replace_route(RouteTableId="rtb-0123456789abcdef0", DestinationCidrBlock="0.0.0.0/0", GatewayId=igw2)
    ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")


def test_replace_route_table_association(ec2, vpc):
    a, b = vpc["tables"]
    assoc = ec2.associate_route_table(RouteTableId=a, SubnetId=vpc["subnet"])["AssociationId"]
    out = ec2.replace_route_table_association(AssociationId=assoc, RouteTableId=b)
    new = out["NewAssociationId"]
    assert new != assoc and out["AssociationState"]["State"] == "associated"
    tb = ec2.describe_route_tables(RouteTableIds=[b])["RouteTables"][0]
    assert [(x["RouteTableAssociationId"], x["SubnetId"]) for x in tb["Associations"]] == [(new, vpc["subnet"])]
    assert ec2.describe_route_tables(RouteTableIds=[a])["RouteTables"][0]["Associations"] == []
    with expect_error("InvalidAssociationID.NotFound"):
        ec2.replace_route_table_association(AssociationId=assoc, RouteTableId=a)
    # The main association moves too: the VPC's main table changes.
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["vpc"]]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    main_assoc = [x for x in main["Associations"] if x["Main"]][0]["RouteTableAssociationId"]
    moved = ec2.replace_route_table_association(AssociationId=main_assoc, RouteTableId=a)["NewAssociationId"]
    now_main = ec2.describe_route_tables(Filters=[{"Name": "association.main", "Values": ["true"]},
                                                  {"Name": "vpc-id", "Values": [vpc["vpc"]]}])["RouteTables"]
    assert [t["RouteTableId"] for t in now_main] == [a]
    ec2.replace_route_table_association(AssociationId=moved, RouteTableId=main["RouteTableId"])
    vpc["tables"] = [a, b]


def _rules(ec2, group, egress=False):
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    return [r for r in rules if r["IsEgress"] == egress]


def test_rule_descriptions_and_modify(ec2, vpc):
    g = vpc["group"]
    perm = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "old"}]}
    ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[perm])
    perm["IpRanges"][0]["Description"] = "by permission"
    ec2.update_security_group_rule_descriptions_ingress(GroupId=g, IpPermissions=[perm])
    (rule,) = _rules(ec2, g)
    assert rule["Description"] == "by permission"
    ec2.update_security_group_rule_descriptions_ingress(
        GroupId=g, SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": rule["SecurityGroupRuleId"], "Description": "by id"}])
    assert _rules(ec2, g)[0]["Description"] == "by id"
    egress = _rules(ec2, g, egress=True)[0]
    ec2.update_security_group_rule_descriptions_egress(
        GroupId=g, SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": egress["SecurityGroupRuleId"], "Description": "out"}])
    assert _rules(ec2, g, egress=True)[0]["Description"] == "out"
    missing = dict(perm, FromPort=23, ToPort=23)
    with expect_error("InvalidPermission.NotFound"):
        ec2.update_security_group_rule_descriptions_ingress(GroupId=g, IpPermissions=[missing])

    ec2.modify_security_group_rules(GroupId=g, SecurityGroupRules=[{
        "SecurityGroupRuleId": rule["SecurityGroupRuleId"],
        "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv4": "10.1.0.0/16", "Description": "https"}}])
    (changed,) = _rules(ec2, g)
    assert (changed["SecurityGroupRuleId"], changed["FromPort"], changed["ToPort"], changed["CidrIpv4"], changed["Description"]) == \
        (rule["SecurityGroupRuleId"], 443, 443, "10.1.0.0/16", "https")
    perms = ec2.describe_security_groups(GroupIds=[g])["SecurityGroups"][0]["IpPermissions"]
    assert [(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in perms] == [(443, "10.1.0.0/16")]
    with expect_error("InvalidSecurityGroupRuleId.NotFound"):
        ec2.modify_security_group_rules(GroupId=g, SecurityGroupRules=[{
            "SecurityGroupRuleId": "sgr-0123456789abcdef0",
            "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIpv4": "10.0.0.0/8"}}])
    with expect_error("DryRunOperation", 412):
        ec2.modify_security_group_rules(GroupId=g, DryRun=True, SecurityGroupRules=[{
            "SecurityGroupRuleId": rule["SecurityGroupRuleId"],
            "SecurityGroupRule": {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "CidrIpv4": "10.0.0.0/8"}}])
    assert _rules(ec2, g)[0]["IpProtocol"] == "tcp"


@pytest.mark.parametrize("given,stored", [("006", "tcp"), ("17", "udp"), ("1", "icmp"), ("47", "47"), ("047", "47")])
def test_protocol_numbers_are_stored_as_what_they_mean(ec2, vpc, given, stored):
    g = vpc["group"]
    ports = {"FromPort": 22, "ToPort": 22} if stored in ("tcp", "udp") else {}
    ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[dict(IpProtocol=given, IpRanges=[{"CidrIp": "10.9.0.0/16"}], **ports)])
    (rule,) = [r for r in _rules(ec2, g) if r["CidrIpv4"] == "10.9.0.0/16"]
    assert rule["IpProtocol"] == stored
    if stored in ("tcp", "udp"):
        assert (rule["FromPort"], rule["ToPort"]) == (22, 22)
    ec2.revoke_security_group_ingress(GroupId=g, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])


def test_protocol_with_a_sign_is_refused(ec2, vpc):
    with expect_error("InvalidParameterValue"):
        ec2.authorize_security_group_ingress(GroupId=vpc["group"], IpPermissions=[
            {"IpProtocol": "+6", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])


def test_address_domain_name_attribute(ec2, endpoint):
    alloc = ec2.allocate_address(Domain="vpc")
    try:
        aid, ip = alloc["AllocationId"], alloc["PublicIp"]
        got = ec2.describe_addresses_attribute(AllocationIds=[aid], Attribute="domain-name")["Addresses"]
        assert [(a["AllocationId"], a["PublicIp"]) for a in got] == [(aid, ip)]
        assert got[0]["PtrRecord"].startswith("ec2-" + ip.replace(".", "-"))
        out = ec2.modify_address_attribute(AllocationId=aid, DomainName="www.example.com")["Address"]
        assert out["PtrRecord"] == "www.example.com"
        assert ec2.describe_addresses_attribute(AllocationIds=[aid], Attribute="domain-name")["Addresses"][0]["PtrRecord"] == "www.example.com"
        ec2.reset_address_attribute(AllocationId=aid, Attribute="domain-name")
        assert ec2.describe_addresses_attribute(AllocationIds=[aid], Attribute="domain-name")["Addresses"][0]["PtrRecord"] == got[0]["PtrRecord"]
        with expect_error("InvalidParameterValue"):
            ec2.modify_address_attribute(AllocationId=aid, DomainName="not a name")
        with expect_error("InvalidAllocationID.NotFound"):
            ec2.describe_addresses_attribute(AllocationIds=["eipalloc-0123456789abcdef0"], Attribute="domain-name")
        with expect_error("InvalidAllocationID.Malformed"):
            ec2.modify_address_attribute(AllocationId="eipalloc-x", DomainName="a.example.com")
        with expect_error("DryRunOperation", 412):
            ec2.modify_address_attribute(AllocationId=aid, DomainName="a.example.com", DryRun=True)
    finally:
        ec2.release_address(AllocationId=alloc["AllocationId"])
