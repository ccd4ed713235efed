"""A replay of the Terraform AWS provider's EC2 call sequences (create, refresh, update, destroy).

The provider cannot be downloaded here, so each test sends, with boto3, the calls that
hashicorp/terraform-provider-aws (internal/service/ec2, the AWS SDK for Go v2 code of the
v5/v6 provider) makes for one resource or data source, in the provider's order and with the
parameters it sends by default, including the waiters and finders it polls through (find.go,
wait.go, status.go). Each test's docstring names the source files and functions it was written
from.

What a test accepts is what the provider accepts: error codes the provider tolerates are
tolerated, NotFound answers count as "gone" only where the provider's finder maps them to
NotFound, and response members the provider dereferences without a nil check are asserted to
be present. Where the provider merely logs an error (a WARN, not a failure) the replay still
expects the call to work and says so in a comment: a failing call there leaves Terraform state
incomplete.

Shape of a test: create (the provider's Create, which ends in its Read) -> refresh (Read again,
as `terraform plan` does) -> a common update (Update, ending in Read) -> refresh -> destroy
(Delete and the waits it does) -> the read a later refresh does, which must find the resource
gone (the provider then drops it from state).

Waits mirror retry.StateChangeConf (pending/target states, NotFoundChecks,
ContinuousTargetOccurence) but poll at this suite's pace with its deadline: no fixed sleeps.
"""

import base64
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from support import (
    POLL_INTERVAL_S,
    RUN_ID,
    RUN_TAG_KEY,
    WAIT_TIMEOUT_S,
    instances_of,
    tags_of,
    unique,
    wait_for,
)

# A retry loop on an error code (tfresource.RetryWhenAWSErrCodeEquals) gives up after this:
# the provider waits minutes, but against the simulated hypervisor a code that persists for
# more than a few seconds is a finding, not eventual consistency.
RETRY_TIMEOUT_S = min(WAIT_TIMEOUT_S, 30.0)

# An ed25519 public key (its private half was discarded) for aws_key_pair's ImportKeyPair.
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINu1d2ZGURg9IMF+jE6/tgUFZ5s2IJ8bPQ/FwJVGV/Cs "
    "terraform-replay"
)


# --------------------------------------------------------------------------------------------
# The provider's machinery, in Python


def code_of(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def tolerate(call, codes, message_contains=None, **params):
    """`if tfawserr.ErrCodeEquals(err, codes...) { return nil }` (or ErrMessageContains when
    `message_contains` is given): the response, or None when the error is one the provider
    shrugs off."""
    try:
        return call(**params)
    except ClientError as err:
        if code_of(err) in codes and (
            message_contains is None or message_contains in err.response["Error"].get("Message", "")
        ):
            return None
        raise


def describe_or_none(call, notfound_codes, **params):
    """A finder's first step: the response, or None where the provider maps the error code to
    retry.NotFoundError."""
    return tolerate(call, notfound_codes, **params)


def pages(call, key, notfound_codes=(), **params):
    """A v2 paginator (NewDescribeXPaginator): follows NextToken; MaxResults is not sent.
    None where the provider maps the error code to NotFound."""
    items = []
    token = None
    while True:
        kwargs = dict(params)
        if token:
            kwargs["NextToken"] = token
        resp = describe_or_none(call, notfound_codes, **kwargs)
        if resp is None:
            return None
        items.extend(resp.get(key) or [])
        token = resp.get("NextToken")
        if not token:
            return items


def single(items, what):
    """tfresource.AssertSingleValueResult: None (NotFound) for none, an error for several."""
    if items is None:
        return None
    assert len(items) <= 1, (
        f"{what}: {len(items)} results where the provider asserts a single one "
        "(tfresource.AssertSingleValueResult fails with TooManyResultsError)"
    )
    return items[0] if items else None


def state_change(refresh, *, pending, target, what, not_found_checks=20,
                 continuous_target_occurrence=1, timeout=WAIT_TIMEOUT_S):
    """retry.StateChangeConf.WaitForStateContext. `refresh` is a status* function: it returns
    (object, state), or (None, "") when the finder says NotFound. An empty `target` waits for
    NotFound; a state that is neither pending nor target fails at once when `pending` is not
    empty (UnexpectedStateError); NotFound while a target state is awaited fails after
    `not_found_checks` polls (NotFoundError)."""
    deadline = time.monotonic() + timeout
    occurrences = 0
    not_found = 0
    seen = []
    while True:
        obj, state = refresh()
        seen.append(state if obj is not None else "<not found>")
        if obj is None and not target:
            occurrences += 1
            if occurrences >= continuous_target_occurrence:
                return None
        elif obj is None:
            not_found += 1
            if not_found > not_found_checks:
                pytest.fail(f"{what}: NotFound {not_found} times while waiting for {target} "
                            f"(the provider fails with NotFoundError); states seen: {seen[-8:]}")
        else:
            not_found = 0
            if state in target:
                occurrences += 1
                if occurrences >= continuous_target_occurrence:
                    return obj
            elif state in pending:
                occurrences = 0
            elif pending:
                pytest.fail(f"{what}: unexpected state {state!r}, wanted {target}, pending {pending} "
                            f"(the provider fails with UnexpectedStateError); states seen: {seen[-8:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: timed out after {timeout}s waiting for {target or 'NotFound'}; "
                        f"states seen: {seen[-8:]}")
        time.sleep(POLL_INTERVAL_S)


def retry_when_codes(call, codes, what, **params):
    """tfresource.RetryWhenAWSErrCodeEquals: retries while the error is one of `codes`."""
    deadline = time.monotonic() + RETRY_TIMEOUT_S
    while True:
        try:
            return call(**params)
        except ClientError as err:
            if code_of(err) not in codes or time.monotonic() > deadline:
                raise
        time.sleep(POLL_INTERVAL_S)


def retry_until_found(find, what):
    """tfresource.RetryWhenNotFound / RetryWhenNewResourceNotFound on a new resource."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        found = find()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still NotFound after {WAIT_TIMEOUT_S}s")
        time.sleep(POLL_INTERVAL_S)


def retry_until_not_found(find, what):
    """tfresource.RetryUntilNotFound."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while find() is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still found after {WAIT_TIMEOUT_S}s")
        time.sleep(POLL_INTERVAL_S)


# --------------------------------------------------------------------------------------------
# Tags: getTagSpecificationsIn and the generated updateTags (tags_gen.go)


def tag_list(tags: dict) -> list:
    """The resource's tags plus this run's tag (the provider's default_tags, in effect)."""
    merged = {**tags, RUN_TAG_KEY: RUN_ID}
    return [{"Key": k, "Value": v} for k, v in merged.items()]


def tag_spec(resource_type: str, tags: dict) -> list:
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]


def update_tags(ec2, resource_id, old: dict, new: dict):
    """updateTags: DeleteTags for the keys gone (with their old values), then CreateTags for the
    keys added or changed."""
    removed = {k: v for k, v in old.items() if k not in new}
    updated = {k: v for k, v in new.items() if old.get(k) != v}
    if removed:
        ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": k, "Value": v} for k, v in removed.items()])
    if updated:
        ec2.create_tags(Resources=[resource_id], Tags=[{"Key": k, "Value": v} for k, v in updated.items()])


def assert_tags(resource: dict, expected: dict, what: str):
    """setTagsOut: the refreshed tags are exactly the configured ones plus the default tags, or
    the next plan shows a diff."""
    got = tags_of(resource)
    want = {**expected, RUN_TAG_KEY: RUN_ID}
    assert got == want, f"{what}: tags read back {got}, configured {want} (a perpetual diff)"


TAGS_BEFORE = {"Name": "before", "Gone": "soon"}
TAGS_AFTER = {"Name": "after", "Added": "yes"}


def client_token() -> str:
    """id.UniqueId(): terraform-<timestamp><counter>."""
    return f"terraform-{uuid.uuid4().hex[:26]}"


# --------------------------------------------------------------------------------------------
# Cleanup in dependency order, whatever the test got through


class Undo:
    """A stack of removals, run last-in first-out at teardown, ignoring what is already gone."""

    def __init__(self, ec2):
        self.ec2 = ec2
        self.steps = []

    def push(self, fn):
        self.steps.append(fn)

    def instance(self, instance_id):
        def terminate():
            try:
                self.ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
            except ClientError:
                pass
            self.ec2.terminate_instances(InstanceIds=[instance_id])
            wait_for(self.ec2, "instance_terminated", InstanceIds=[instance_id])
        self.push(terminate)

    def run(self):
        while self.steps:
            fn = self.steps.pop()
            try:
                fn()
            except Exception:  # best effort: a test failure is already on record
                pass


@pytest.fixture
def undo(ec2, tracker, storage):
    """Tears down after the test, before `tracker`/`storage` do (it is set up after them)."""
    u = Undo(ec2)
    yield u
    u.run()


# --------------------------------------------------------------------------------------------
# Prerequisites made with plain calls (not replays): the resource under test needs them


def make_vpc(ec2, undo, cidr):
    vpc_id = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=tag_spec("vpc", {}))["Vpc"]["VpcId"]
    undo.push(lambda: ec2.delete_vpc(VpcId=vpc_id))
    return vpc_id


def make_subnet(ec2, undo, vpc_id, cidr, zone, tags=None):
    subnet_id = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
        TagSpecifications=tag_spec("subnet", tags or {}),
    )["Subnet"]["SubnetId"]
    undo.push(lambda: ec2.delete_subnet(SubnetId=subnet_id))
    return subnet_id


def make_igw(ec2, undo, vpc_id):
    igw_id = ec2.create_internet_gateway(
        TagSpecifications=tag_spec("internet-gateway", {}))["InternetGateway"]["InternetGatewayId"]
    undo.push(lambda: ec2.delete_internet_gateway(InternetGatewayId=igw_id))
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    undo.push(lambda: ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id))
    return igw_id


def make_route_table(ec2, undo, vpc_id):
    rt_id = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=tag_spec("route-table", {}))["RouteTable"]["RouteTableId"]
    undo.push(lambda: ec2.delete_route_table(RouteTableId=rt_id))
    return rt_id


def make_security_group(ec2, undo, vpc_id):
    sg_id = ec2.create_security_group(
        GroupName=unique("tf-replay-sg"), Description="replay prerequisite", VpcId=vpc_id,
        TagSpecifications=tag_spec("security-group", {}),
    )["GroupId"]
    undo.push(lambda: ec2.delete_security_group(GroupId=sg_id))
    return sg_id


def launch_running(ec2, undo, tracker, image_id, instance_type, **params):
    resp = ec2.run_instances(
        ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1,
        TagSpecifications=tag_spec("instance", {}), **params,
    )
    instance_id = resp["Instances"][0]["InstanceId"]
    tracker.instances([instance_id])
    undo.instance(instance_id)
    wait_for(ec2, "instance_running", InstanceIds=[instance_id])
    return instances_of(ec2.describe_instances(InstanceIds=[instance_id]))[0]


# --------------------------------------------------------------------------------------------
# Finders (find.go) and status functions (status.go)


def find_vpc(ec2, vpc_id):
    """findVPCByID (no eventual-consistency id check)."""
    return single(pages(ec2.describe_vpcs, "Vpcs", ("InvalidVpcID.NotFound",), VpcIds=[vpc_id]), "DescribeVpcs")


VPC_ATTRIBUTE_MEMBERS = {
    "enableDnsHostnames": "EnableDnsHostnames",
    "enableDnsSupport": "EnableDnsSupport",
    "enableNetworkAddressUsageMetrics": "EnableNetworkAddressUsageMetrics",
}


def find_vpc_attribute(ec2, vpc_id, attribute):
    """findVPCAttribute: the member named for the attribute must be in the answer (a missing one
    is tfresource.NewEmptyResultError, which fails the read)."""
    resp = describe_or_none(ec2.describe_vpc_attribute, ("InvalidVpcID.NotFound",), VpcId=vpc_id, Attribute=attribute)
    if resp is None:
        return None
    member = VPC_ATTRIBUTE_MEMBERS[attribute]
    assert member in resp and "Value" in resp[member], (
        f"DescribeVpcAttribute {attribute}: no {member}.Value in {resp} (findVPCAttribute: empty result)"
    )
    return resp[member]["Value"]


def refresh_vpc(ec2, vpc_id):
    """resourceVPCRead."""
    vpc = find_vpc(ec2, vpc_id)
    assert vpc is not None, f"resourceVPCRead: {vpc_id} not found"
    attrs = {}
    for attribute in VPC_ATTRIBUTE_MEMBERS:
        value = find_vpc_attribute(ec2, vpc_id, attribute)
        assert value is not None, f"resourceVPCRead: DescribeVpcAttribute {attribute} says the VPC is gone"
        attrs[attribute] = value
    # findVPCDefaultNetworkACL, findVPCMainRouteTable, findVPCDefaultSecurityGroup: the
    # provider only logs a WARN when these fail, but then default_network_acl_id,
    # main_route_table_id/default_route_table_id and default_security_group_id stay empty.
    nacl = single(pages(ec2.describe_network_acls, "NetworkAcls", ("InvalidNetworkAclID.NotFound",),
                        Filters=[{"Name": "default", "Values": ["true"]}, {"Name": "vpc-id", "Values": [vpc_id]}]),
                  "DescribeNetworkAcls default=true")
    assert nacl is not None and nacl.get("NetworkAclId"), "the VPC has no default network ACL"
    main_rt = single(pages(ec2.describe_route_tables, "RouteTables", ("InvalidRouteTableID.NotFound",),
                           Filters=[{"Name": "association.main", "Values": ["true"]}, {"Name": "vpc-id", "Values": [vpc_id]}]),
                     "DescribeRouteTables association.main=true")
    assert main_rt is not None and main_rt.get("RouteTableId"), "the VPC has no main route table"
    default_sg = single(pages(ec2.describe_security_groups, "SecurityGroups",
                              ("InvalidGroup.NotFound", "InvalidSecurityGroupID.NotFound"),
                              Filters=[{"Name": "group-name", "Values": ["default"]}, {"Name": "vpc-id", "Values": [vpc_id]}]),
                        "DescribeSecurityGroups group-name=default")
    assert default_sg is not None and default_sg.get("GroupId"), "the VPC has no default security group"
    for assoc in vpc.get("Ipv6CidrBlockAssociationSet") or []:
        assert "State" in (assoc.get("Ipv6CidrBlockState") or {}), "defaultIPv6CIDRBlockAssociation dereferences Ipv6CidrBlockState.State"
    return vpc, attrs


def status_vpc(ec2, vpc_id):
    vpc = find_vpc(ec2, vpc_id)
    return (vpc, vpc["State"]) if vpc else (None, "")


def find_subnet(ec2, subnet_id):
    """findSubnetByID."""
    subnet = single(pages(ec2.describe_subnets, "Subnets", ("InvalidSubnetID.NotFound",), SubnetIds=[subnet_id]), "DescribeSubnets")
    if subnet is None or subnet.get("SubnetId") != subnet_id:
        return None
    return subnet


def find_internet_gateway(ec2, igw_id):
    """findInternetGatewayByID."""
    igw = single(pages(ec2.describe_internet_gateways, "InternetGateways", ("InvalidInternetGatewayID.NotFound",),
                       InternetGatewayIds=[igw_id]), "DescribeInternetGateways")
    if igw is None or igw.get("InternetGatewayId") != igw_id:
        return None
    return igw


def status_igw_attachment(ec2, igw_id, vpc_id):
    """statusInternetGatewayAttachmentState over findInternetGatewayAttachment."""
    igw = find_internet_gateway(ec2, igw_id)
    if igw is None:
        return None, ""
    attachments = igw.get("Attachments") or []
    if not attachments:
        return None, ""  # tfresource.NewEmptyResultError: NotFound
    assert len(attachments) == 1, f"{igw_id}: {len(attachments)} attachments (TooManyResultsError)"
    if attachments[0].get("VpcId") != vpc_id:
        return None, ""
    return attachments[0], attachments[0].get("State", "")


def find_route_table(ec2, rt_id):
    """findRouteTableByID."""
    return single(pages(ec2.describe_route_tables, "RouteTables", ("InvalidRouteTableID.NotFound",),
                        RouteTableIds=[rt_id]), "DescribeRouteTables")


def status_route_table(ec2, rt_id):
    rt = find_route_table(ec2, rt_id)
    return (rt, "ready") if rt else (None, "")


def find_route_ipv4(ec2, rt_id, destination):
    """findRouteByIPv4Destination."""
    rt = find_route_table(ec2, rt_id)
    if rt is None:
        return None
    for route in rt.get("Routes") or []:
        if route.get("DestinationCidrBlock") == destination:
            return route
    return None


def status_route(ec2, rt_id, destination):
    route = find_route_ipv4(ec2, rt_id, destination)
    return (route, "ready") if route else (None, "")


def find_route_table_association(ec2, association_id):
    """findRouteTableAssociationByID."""
    rt = single(pages(ec2.describe_route_tables, "RouteTables", ("InvalidRouteTableID.NotFound",),
                      Filters=[{"Name": "association.route-table-association-id", "Values": [association_id]}]),
                "DescribeRouteTables association.route-table-association-id")
    if rt is None:
        return None
    for assoc in rt.get("Associations") or []:
        if assoc.get("RouteTableAssociationId") == association_id:
            if (assoc.get("AssociationState") or {}).get("State") == "disassociated":
                return None
            return assoc
    return None


def status_route_table_association(ec2, association_id):
    """statusRouteTableAssociation: a missing AssociationState counts as associated."""
    assoc = find_route_table_association(ec2, association_id)
    if assoc is None:
        return None, ""
    return assoc, (assoc.get("AssociationState") or {}).get("State", "associated")


def find_security_group(ec2, sg_id):
    """findSecurityGroupByID."""
    sg = single(pages(ec2.describe_security_groups, "SecurityGroups",
                      ("InvalidGroup.NotFound", "InvalidSecurityGroupID.NotFound"), GroupIds=[sg_id]),
                "DescribeSecurityGroups")
    if sg is None or sg.get("GroupId") != sg_id:
        return None
    return sg


def check_permissions_shape(permissions, what):
    """securityGroupIPPermGather dereferences *ip.CidrIp, *ip.CidrIpv6 and *pl.PrefixListId."""
    for perm in permissions or []:
        assert "IpProtocol" in perm, f"{what}: IpPermission without IpProtocol: {perm}"
        for r in perm.get("IpRanges") or []:
            assert "CidrIp" in r, f"{what}: IpRange without CidrIp: {perm}"
        for r in perm.get("Ipv6Ranges") or []:
            assert "CidrIpv6" in r, f"{what}: Ipv6Range without CidrIpv6: {perm}"
        for p in perm.get("PrefixListIds") or []:
            assert "PrefixListId" in p, f"{what}: PrefixListId entry without PrefixListId: {perm}"


def find_rule_match(p, rules):
    """vpc_security_group_rule.go findRuleMatch (VPC group): the matching IpPermission and the
    description the provider reads back."""
    match, description = None, ""
    for r in rules or []:
        if "ToPort" in p and "ToPort" in r and p["ToPort"] != r["ToPort"]:
            continue
        if "FromPort" in p and "FromPort" in r and p["FromPort"] != r["FromPort"]:
            continue
        if p.get("IpProtocol") is not None and r.get("IpProtocol") is not None and p["IpProtocol"] != r["IpProtocol"]:
            continue
        remaining = len(p.get("IpRanges") or [])
        for v1 in p.get("IpRanges") or []:
            for v2 in r.get("IpRanges") or []:
                if v1.get("CidrIp") and v1.get("CidrIp") == v2.get("CidrIp"):
                    remaining -= 1
                    if v2.get("Description") and not description:
                        description = v2["Description"]
        if remaining > 0:
            continue
        match = r
    return match, description


def find_instance(ec2, instance_id):
    """findInstanceByID: a terminated instance is NotFound."""
    inst = single(instances_of_pages(ec2, instance_id), "DescribeInstances")
    if inst is None:
        return None
    assert "State" in inst and "Name" in inst["State"], "findInstance asserts State != nil; findInstanceByID reads State.Name"
    if inst["State"]["Name"] == "terminated" or inst.get("InstanceId") != instance_id:
        return None
    return inst


def instances_of_pages(ec2, instance_id):
    reservations = pages(ec2.describe_instances, "Reservations", ("InvalidInstanceID.NotFound",), InstanceIds=[instance_id])
    if reservations is None:
        return None
    return [i for r in reservations for i in r.get("Instances") or []]


def status_instance(ec2, instance_id):
    """statusInstance: findInstance, terminated included."""
    inst = single(instances_of_pages(ec2, instance_id), "DescribeInstances")
    if inst is None:
        return None, ""
    assert "State" in inst and "Name" in inst["State"], "statusInstance reads State.Name"
    return inst, inst["State"]["Name"]


def find_instance_type(ec2, instance_type):
    """findInstanceTypeByName: exactly one answer."""
    found = pages(ec2.describe_instance_types, "InstanceTypes", InstanceTypes=[instance_type])
    info = single(found, f"DescribeInstanceTypes {instance_type}")
    assert info is not None, f"DescribeInstanceTypes {instance_type}: no result (findInstanceTypeByName fails the read)"
    return info


def find_volume(ec2, volume_id):
    """findEBSVolumeByID: `deleted` is NotFound."""
    vol = single(pages(ec2.describe_volumes, "Volumes", ("InvalidVolume.NotFound",), VolumeIds=[volume_id]), "DescribeVolumes")
    if vol is None or vol.get("State") == "deleted" or vol.get("VolumeId") != volume_id:
        return None
    return vol


def status_volume(ec2, volume_id):
    vol = find_volume(ec2, volume_id)
    return (vol, vol["State"]) if vol else (None, "")


def find_volume_attachment(ec2, volume_id, instance_id, device):
    """ebs_volume_attachment.go findVolumeAttachment."""
    vol = single(pages(ec2.describe_volumes, "Volumes", ("InvalidVolume.NotFound",), VolumeIds=[volume_id],
                       Filters=[{"Name": "attachment.device", "Values": [device]},
                                {"Name": "attachment.instance-id", "Values": [instance_id]}]),
                 "DescribeVolumes attachment filters")
    if vol is None or vol.get("State") in ("available", "deleted") or vol.get("VolumeId") != volume_id:
        return None
    for att in vol.get("Attachments") or []:
        if att.get("State") == "detached":
            continue
        if att.get("Device") == device and att.get("InstanceId") == instance_id:
            return att
    return None


def status_volume_attachment(ec2, volume_id, instance_id, device):
    att = find_volume_attachment(ec2, volume_id, instance_id, device)
    return (att, att.get("State", "")) if att else (None, "")


def find_image(ec2, image_id):
    """findImageByID: `deregistered` is NotFound."""
    img = single(pages(ec2.describe_images, "Images", ("InvalidAMIID.NotFound",), ImageIds=[image_id]), "DescribeImages")
    if img is None or img.get("State") == "deregistered" or img.get("ImageId") != image_id:
        return None
    return img


def status_image(ec2, image_id):
    img = find_image(ec2, image_id)
    return (img, img["State"]) if img else (None, "")


EIP_NOTFOUND = ("InvalidAddress.NotFound", "InvalidAllocationID.NotFound")


def find_eip(ec2, allocation_id):
    """findEIPByAllocationID (findEIPs also maps AuthFailure "does not belong to you")."""
    try:
        resp = ec2.describe_addresses(AllocationIds=[allocation_id])
    except ClientError as err:
        if code_of(err) in EIP_NOTFOUND or (
            code_of(err) == "AuthFailure" and "does not belong to you" in err.response["Error"].get("Message", "")
        ):
            return None
        raise
    addr = single(resp.get("Addresses") or [], "DescribeAddresses")
    if addr is None or addr.get("AllocationId") != allocation_id:
        return None
    return addr


def find_eip_by_association(ec2, association_id):
    """findEIPByAssociationID."""
    resp = describe_or_none(ec2.describe_addresses, EIP_NOTFOUND,
                            Filters=[{"Name": "association-id", "Values": [association_id]}])
    if resp is None:
        return None
    addr = single(resp.get("Addresses") or [], "DescribeAddresses association-id")
    if addr is None or addr.get("AssociationId") != association_id:
        return None
    return addr


def refresh_eip(ec2, allocation_id):
    """resourceEIPRead: findEIPByAllocationID, then findEIPDomainNameAttributeByAllocationID
    (DescribeAddressesAttribute; no answer is NotFound, which is fine; an error fails the read)."""
    addr = find_eip(ec2, allocation_id)
    assert addr is not None, f"resourceEIPRead: {allocation_id} not found"
    attrs = pages(ec2.describe_addresses_attribute, "Addresses", AllocationIds=[allocation_id], Attribute="domain-name")
    attr = single(attrs, "DescribeAddressesAttribute")
    if attr is not None:
        assert attr.get("AllocationId") == allocation_id, f"DescribeAddressesAttribute answered for {attr.get('AllocationId')}"
    return addr


# --------------------------------------------------------------------------------------------
# aws_vpc


def test_aws_vpc(ec2, undo):
    """aws_vpc. Written from vpc_.go resourceVPCCreate (CreateVpc, waitVPCCreated,
    modifyVPCAttributesOnCreate), resourceVPCRead (findVPCByID, findVPCAttribute x3,
    findVPCDefaultNetworkACL, findVPCMainRouteTable, findVPCDefaultSecurityGroup),
    resourceVPCUpdate (modifyVPCDNSHostnames: ModifyVpcAttribute + waitVPCAttributeUpdated; tags
    via updateTags), resourceVPCDelete (DeleteVpc retried on DependencyViolation,
    InvalidVpcID.NotFound tolerated, then RetryUntilNotFound findVPCByID); find.go, wait.go
    waitVPCCreated/waitVPCAttributeUpdated, status.go statusVPC/statusVPCAttributeValue."""
    # Create: instance_tenancy defaults to "default"; assign_generated_ipv6_cidr_block to false.
    vpc_id = ec2.create_vpc(
        CidrBlock="10.61.0.0/16", AmazonProvidedIpv6CidrBlock=False, InstanceTenancy="default",
        TagSpecifications=tag_spec("vpc", TAGS_BEFORE),
    )["Vpc"]["VpcId"]
    undo.push(lambda: ec2.delete_vpc(VpcId=vpc_id))
    state_change(lambda: status_vpc(ec2, vpc_id), pending=["pending"], target=["available"], what="waitVPCCreated")
    # modifyVPCAttributesOnCreate compares the configuration (dns hostnames false, dns support
    # true, address usage metrics false) with those same assumed defaults: no calls.
    vpc, attrs = refresh_vpc(ec2, vpc_id)
    assert vpc["CidrBlock"] == "10.61.0.0/16" and vpc.get("InstanceTenancy") == "default", vpc
    assert vpc.get("OwnerId"), "resourceVPCRead builds the ARN from OwnerId"
    assert attrs == {"enableDnsHostnames": False, "enableDnsSupport": True,
                     "enableNetworkAddressUsageMetrics": False}, attrs
    assert_tags(vpc, TAGS_BEFORE, "aws_vpc")

    refresh_vpc(ec2, vpc_id)  # terraform plan

    # Update: enable_dns_hostnames = true, and the tags.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    state_change(lambda: (lambda v: (v, str(v).lower()) if v is not None else (None, ""))(
        find_vpc_attribute(ec2, vpc_id, "enableDnsHostnames")),
        pending=[], target=["true"], what="waitVPCAttributeUpdated enableDnsHostnames")
    update_tags(ec2, vpc_id, TAGS_BEFORE, TAGS_AFTER)
    vpc, attrs = refresh_vpc(ec2, vpc_id)
    assert attrs["enableDnsHostnames"] is True
    assert_tags(vpc, TAGS_AFTER, "aws_vpc after update")

    # Delete.
    retry_when_codes(lambda: tolerate(ec2.delete_vpc, ("InvalidVpcID.NotFound",), VpcId=vpc_id),
                     ("DependencyViolation",), "DeleteVpc")
    retry_until_not_found(lambda: find_vpc(ec2, vpc_id), "resourceVPCDelete RetryUntilNotFound")
    assert find_vpc(ec2, vpc_id) is None


# --------------------------------------------------------------------------------------------
# aws_subnet


def test_aws_subnet(ec2, undo, zones):
    """aws_subnet. Written from vpc_subnet.go resourceSubnetCreate (CreateSubnet,
    waitSubnetAvailable, modifySubnetAttributesOnCreate), resourceSubnetRead (findSubnetByID),
    resourceSubnetUpdate (modifySubnetMapPublicIPOnLaunch: ModifySubnetAttribute +
    waitSubnetMapPublicIPOnLaunchUpdated; tags), resourceSubnetDelete (deleteLingeringENIs:
    DescribeNetworkInterfaces subnet-id; DeleteSubnet retried on DependencyViolation,
    InvalidSubnetID.NotFound tolerated); vpc_network_interface.go deleteLingeringENIs; find.go
    findSubnetByID/findNetworkInterfaces; wait.go/status.go waitSubnetAvailable,
    waitSubnetMapPublicIPOnLaunchUpdated."""
    vpc_id = make_vpc(ec2, undo, "10.62.0.0/16")

    subnet_id = ec2.create_subnet(
        TagSpecifications=tag_spec("subnet", TAGS_BEFORE), VpcId=vpc_id,
        AvailabilityZone=zones[0], CidrBlock="10.62.1.0/24",
    )["Subnet"]["SubnetId"]
    undo.push(lambda: ec2.delete_subnet(SubnetId=subnet_id))
    subnet = state_change(lambda: (lambda s: (s, s["State"]) if s else (None, ""))(find_subnet(ec2, subnet_id)),
                          pending=["pending"], target=["available"], what="waitSubnetAvailable")

    # modifySubnetAttributesOnCreate: every attribute whose configured value (all defaults
    # here) differs from what the new subnet reports gets a ModifySubnetAttribute.
    def modify_and_wait(field, value, **params):
        ec2.modify_subnet_attribute(SubnetId=subnet_id, **params)
        state_change(lambda: (lambda s: (s, str(bool(s.get(field))).lower()) if s else (None, ""))(find_subnet(ec2, subnet_id)),
                     pending=[], target=[str(value).lower()], what=f"wait Subnet {field} updated")

    if subnet.get("AssignIpv6AddressOnCreation", False):
        modify_and_wait("AssignIpv6AddressOnCreation", False, AssignIpv6AddressOnCreation={"Value": False})
    if subnet.get("EnableDns64", False):
        modify_and_wait("EnableDns64", False, EnableDns64={"Value": False})
    if subnet.get("CustomerOwnedIpv4Pool", "") != "" or subnet.get("MapCustomerOwnedIpOnLaunch", False):
        ec2.modify_subnet_attribute(SubnetId=subnet_id, CustomerOwnedIpv4Pool="",
                                    MapCustomerOwnedIpOnLaunch={"Value": False})
    dns = subnet.get("PrivateDnsNameOptionsOnLaunch")
    if dns is not None:
        if dns.get("EnableResourceNameDnsAAAARecord", False):
            ec2.modify_subnet_attribute(SubnetId=subnet_id, EnableResourceNameDnsAAAARecordOnLaunch={"Value": False})
        if dns.get("EnableResourceNameDnsARecord", False):
            ec2.modify_subnet_attribute(SubnetId=subnet_id, EnableResourceNameDnsARecordOnLaunch={"Value": False})
    if subnet.get("MapPublicIpOnLaunch", False):
        modify_and_wait("MapPublicIpOnLaunch", False, MapPublicIpOnLaunch={"Value": False})

    def refresh():
        s = find_subnet(ec2, subnet_id)
        assert s is not None, f"resourceSubnetRead: {subnet_id} not found"
        for assoc in s.get("Ipv6CidrBlockAssociationSet") or []:
            assert "State" in (assoc.get("Ipv6CidrBlockState") or {}), "resourceSubnetRead reads Ipv6CidrBlockState.State"
        return s

    s = refresh()
    assert s["VpcId"] == vpc_id and s["CidrBlock"] == "10.62.1.0/24" and s["AvailabilityZone"] == zones[0], s
    assert s.get("MapPublicIpOnLaunch") is False, "map_public_ip_on_launch defaults to false"
    assert_tags(s, TAGS_BEFORE, "aws_subnet")
    refresh()

    # Update: map_public_ip_on_launch = true, and the tags.
    modify_and_wait("MapPublicIpOnLaunch", True, MapPublicIpOnLaunch={"Value": True})
    update_tags(ec2, subnet_id, TAGS_BEFORE, TAGS_AFTER)
    s = refresh()
    assert s["MapPublicIpOnLaunch"] is True
    assert_tags(s, TAGS_AFTER, "aws_subnet after update")

    # Delete: deleteLingeringENIs first (Lambda/Comprehend/DMS ENIs; none here).
    enis = pages(ec2.describe_network_interfaces, "NetworkInterfaces", ("InvalidNetworkInterfaceID.NotFound",),
                 Filters=[{"Name": "subnet-id", "Values": [subnet_id]}])
    assert enis is not None, "deleteLingeringENIs: DescribeNetworkInterfaces subnet-id answered NotFound (an error for the provider)"
    retry_when_codes(lambda: tolerate(ec2.delete_subnet, ("InvalidSubnetID.NotFound",), SubnetId=subnet_id),
                     ("DependencyViolation",), "DeleteSubnet")
    assert find_subnet(ec2, subnet_id) is None


# --------------------------------------------------------------------------------------------
# aws_internet_gateway


def attach_internet_gateway(ec2, igw_id, vpc_id):
    """attachInternetGateway: AttachInternetGateway (retried on InvalidInternetGatewayID.NotFound)
    then waitInternetGatewayAttached: attaching -> `available` (the state AWS reports for an
    attached internet gateway), NotFoundChecks 1000."""
    retry_when_codes(ec2.attach_internet_gateway, ("InvalidInternetGatewayID.NotFound",), "AttachInternetGateway",
                     InternetGatewayId=igw_id, VpcId=vpc_id)
    state_change(lambda: status_igw_attachment(ec2, igw_id, vpc_id), pending=["attaching"], target=["available"],
                 not_found_checks=1000, what="waitInternetGatewayAttached")


def detach_internet_gateway(ec2, igw_id, vpc_id):
    """detachInternetGateway: DetachInternetGateway (retried on DependencyViolation,
    Gateway.NotAttached tolerated) then waitInternetGatewayDetached: available/detaching -> gone."""
    resp = retry_when_codes(lambda **p: tolerate(ec2.detach_internet_gateway, ("Gateway.NotAttached",), **p),
                            ("DependencyViolation",), "DetachInternetGateway", InternetGatewayId=igw_id, VpcId=vpc_id)
    if resp is None:
        return
    state_change(lambda: status_igw_attachment(ec2, igw_id, vpc_id), pending=["available", "detaching"], target=[],
                 what="waitInternetGatewayDetached")


def test_aws_internet_gateway(ec2, undo):
    """aws_internet_gateway. Written from vpc_internet_gateway.go resourceInternetGatewayCreate
    (CreateInternetGateway, attachInternetGateway), resourceInternetGatewayRead
    (RetryWhenNewResourceNotFound findInternetGatewayByID), resourceInternetGatewayUpdate
    (vpc_id change: detachInternetGateway then attachInternetGateway; tags),
    resourceInternetGatewayDelete (detachInternetGateway, DeleteInternetGateway retried on
    DependencyViolation, InvalidInternetGatewayID.NotFound tolerated); find.go
    findInternetGatewayByID/findInternetGatewayAttachment; wait.go waitInternetGatewayAttached/
    waitInternetGatewayDetached; status.go statusInternetGatewayAttachmentState."""
    vpc_a = make_vpc(ec2, undo, "10.63.0.0/16")
    vpc_b = make_vpc(ec2, undo, "10.64.0.0/16")

    igw_id = ec2.create_internet_gateway(
        TagSpecifications=tag_spec("internet-gateway", TAGS_BEFORE))["InternetGateway"]["InternetGatewayId"]
    undo.push(lambda: ec2.delete_internet_gateway(InternetGatewayId=igw_id))
    undo.push(lambda: ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_a))
    undo.push(lambda: ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_b))
    attach_internet_gateway(ec2, igw_id, vpc_a)

    def refresh():
        igw = find_internet_gateway(ec2, igw_id)
        assert igw is not None, f"resourceInternetGatewayRead: {igw_id} not found"
        assert igw.get("OwnerId"), "resourceInternetGatewayRead builds the ARN from OwnerId"
        return igw

    igw = retry_until_found(lambda: find_internet_gateway(ec2, igw_id), "resourceInternetGatewayRead (new)")
    assert [a.get("VpcId") for a in igw.get("Attachments") or []] == [vpc_a], igw
    assert_tags(igw, TAGS_BEFORE, "aws_internet_gateway")
    refresh()

    # Update: vpc_id moves to another VPC, and the tags.
    detach_internet_gateway(ec2, igw_id, vpc_a)
    attach_internet_gateway(ec2, igw_id, vpc_b)
    update_tags(ec2, igw_id, TAGS_BEFORE, TAGS_AFTER)
    igw = refresh()
    assert [a.get("VpcId") for a in igw.get("Attachments") or []] == [vpc_b], igw
    assert_tags(igw, TAGS_AFTER, "aws_internet_gateway after update")

    # Delete.
    detach_internet_gateway(ec2, igw_id, vpc_b)
    retry_when_codes(lambda: tolerate(ec2.delete_internet_gateway, ("InvalidInternetGatewayID.NotFound",),
                                      InternetGatewayId=igw_id),
                     ("DependencyViolation",), "DeleteInternetGateway")
    assert find_internet_gateway(ec2, igw_id) is None


# --------------------------------------------------------------------------------------------
# aws_route_table


def flatten_routes_check(rt):
    for route in rt.get("Routes") or []:
        assert "DestinationCidrBlock" in route or "DestinationIpv6CidrBlock" in route or "DestinationPrefixListId" in route, route


def test_aws_route_table(ec2, undo):
    """aws_route_table. Written from vpc_route_table.go resourceRouteTableCreate
    (CreateRouteTable, waitRouteTableReady), resourceRouteTableRead (findRouteTableByID,
    flattenRoutes), resourceRouteTableUpdate (routeTableAddRoute: CreateRoute retried on
    InvalidParameterException/InvalidTransitGatewayID.NotFound, waitRouteReady; tags),
    resourceRouteTableDelete (findRouteTableByID, routeTableAssociationDelete for each
    association, DeleteRouteTable with InvalidRouteTableID.NotFound tolerated,
    waitRouteTableDeleted); find.go findRouteTableByID/findRouteByIPv4Destination; wait.go
    waitRouteTableReady/waitRouteTableDeleted/waitRouteReady; status.go statusRouteTable/statusRoute."""
    vpc_id = make_vpc(ec2, undo, "10.65.0.0/16")
    igw_id = make_igw(ec2, undo, vpc_id)

    # ClientToken is an idempotency token in the EC2 model: the Go SDK v2 fills it in itself,
    # and so does boto3, so CreateRouteTable always carries one.
    rt_id = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=tag_spec("route-table", TAGS_BEFORE))["RouteTable"]["RouteTableId"]
    undo.push(lambda: ec2.delete_route_table(RouteTableId=rt_id))
    state_change(lambda: status_route_table(ec2, rt_id), pending=[], target=["ready"], not_found_checks=1000,
                 continuous_target_occurrence=2, what="waitRouteTableReady")

    def refresh():
        rt = find_route_table(ec2, rt_id)
        assert rt is not None, f"resourceRouteTableRead: {rt_id} not found"
        assert rt.get("OwnerId"), "resourceRouteTableRead builds the ARN from OwnerId"
        assert rt.get("VpcId") == vpc_id, rt
        flatten_routes_check(rt)
        return rt

    rt = refresh()
    assert_tags(rt, TAGS_BEFORE, "aws_route_table")
    refresh()

    # Update: an inline route { cidr_block = "0.0.0.0/0", gateway_id = igw }, and the tags.
    retry_when_codes(ec2.create_route, ("InvalidParameterException", "InvalidTransitGatewayID.NotFound"), "CreateRoute",
                     RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    state_change(lambda: status_route(ec2, rt_id, "0.0.0.0/0"), pending=[], target=["ready"], not_found_checks=1000,
                 continuous_target_occurrence=2, what="waitRouteReady")
    update_tags(ec2, rt_id, TAGS_BEFORE, TAGS_AFTER)
    rt = refresh()
    routes = {r.get("DestinationCidrBlock"): r for r in rt.get("Routes") or []}
    assert routes.get("0.0.0.0/0", {}).get("GatewayId") == igw_id, rt
    assert_tags(rt, TAGS_AFTER, "aws_route_table after update")

    # Delete.
    rt = find_route_table(ec2, rt_id)
    assert rt is not None, "resourceRouteTableDelete: findRouteTableByID"
    for assoc in rt.get("Associations") or []:
        route_table_association_delete(ec2, assoc["RouteTableAssociationId"])
    if tolerate(ec2.delete_route_table, ("InvalidRouteTableID.NotFound",), RouteTableId=rt_id) is not None:
        state_change(lambda: status_route_table(ec2, rt_id), pending=["ready"], target=[],
                     continuous_target_occurrence=2, what="waitRouteTableDeleted")
    assert find_route_table(ec2, rt_id) is None


# --------------------------------------------------------------------------------------------
# aws_route


def test_aws_route(ec2, undo, tracker, image_id, instance_type, zones):
    """aws_route. Written from vpc_route.go resourceRouteCreate (CreateRoute retried on
    InvalidParameterException/InvalidTransitGatewayID.NotFound, waitRouteReady),
    resourceRouteRead (findRouteByIPv4Destination), resourceRouteUpdate (ReplaceRoute to a new
    target, waitRouteReady), resourceRouteDelete (DeleteRoute retried on
    InvalidParameterException; InvalidRoute.NotFound and InvalidParameterValue "cannot remove
    local route" tolerated; waitRouteDeleted); find.go findRouteByIPv4Destination; wait.go
    waitRouteReady/waitRouteDeleted; status.go statusRoute. The update moves the route from the
    internet gateway to an instance's network interface (a NAT instance, the classic case)."""
    vpc_id = make_vpc(ec2, undo, "10.66.0.0/16")
    igw_id = make_igw(ec2, undo, vpc_id)
    subnet_id = make_subnet(ec2, undo, vpc_id, "10.66.1.0/24", zones[0])
    rt_id = make_route_table(ec2, undo, vpc_id)
    destination = "0.0.0.0/0"

    retry_when_codes(ec2.create_route, ("InvalidParameterException", "InvalidTransitGatewayID.NotFound"), "CreateRoute",
                     RouteTableId=rt_id, DestinationCidrBlock=destination, GatewayId=igw_id)
    undo.push(lambda: ec2.delete_route(RouteTableId=rt_id, DestinationCidrBlock=destination))
    state_change(lambda: status_route(ec2, rt_id, destination), pending=[], target=["ready"], not_found_checks=1000,
                 continuous_target_occurrence=2, what="waitRouteReady")

    def refresh():
        route = find_route_ipv4(ec2, rt_id, destination)
        assert route is not None, f"resourceRouteRead: no route to {destination} in {rt_id}"
        return route

    route = refresh()
    assert route.get("GatewayId") == igw_id, route
    assert route.get("Origin") == "CreateRoute" and route.get("State") == "active", route
    refresh()

    # Update: target gateway_id -> network_interface_id.
    instance = launch_running(ec2, undo, tracker, image_id, instance_type, SubnetId=subnet_id)
    enis = [ni for ni in instance.get("NetworkInterfaces") or [] if (ni.get("Attachment") or {}).get("DeviceIndex") == 0]
    assert enis, f"instance {instance['InstanceId']} in {subnet_id} has no primary network interface"
    eni_id = enis[0]["NetworkInterfaceId"]
    ec2.replace_route(RouteTableId=rt_id, DestinationCidrBlock=destination, NetworkInterfaceId=eni_id)
    state_change(lambda: status_route(ec2, rt_id, destination), pending=[], target=["ready"], not_found_checks=1000,
                 continuous_target_occurrence=2, what="waitRouteReady (update)")
    route = refresh()
    assert route.get("NetworkInterfaceId") == eni_id and not route.get("GatewayId"), route
    assert route.get("InstanceId") == instance["InstanceId"], f"a route to an instance's ENI reports the InstanceId: {route}"

    # Delete.
    resp = retry_when_codes(lambda: tolerate(ec2.delete_route, ("InvalidRoute.NotFound",),
                                             RouteTableId=rt_id, DestinationCidrBlock=destination),
                            ("InvalidParameterException",), "DeleteRoute")
    if resp is not None:
        state_change(lambda: status_route(ec2, rt_id, destination), pending=["ready"], target=[],
                     continuous_target_occurrence=2, what="waitRouteDeleted")
    assert find_route_ipv4(ec2, rt_id, destination) is None


# --------------------------------------------------------------------------------------------
# aws_route_table_association


def route_table_association_delete(ec2, association_id):
    """routeTableAssociationDelete: DisassociateRouteTable (InvalidAssociationID.NotFound
    tolerated), waitRouteTableAssociationDeleted: disassociating/associated -> gone."""
    if tolerate(ec2.disassociate_route_table, ("InvalidAssociationID.NotFound",), AssociationId=association_id) is None:
        return
    state_change(lambda: status_route_table_association(ec2, association_id),
                 pending=["disassociating", "associated"], target=[], what="waitRouteTableAssociationDeleted")


def test_aws_route_table_association(ec2, undo, zones):
    """aws_route_table_association. Written from vpc_route_table_association.go
    resourceRouteTableAssociationCreate (AssociateRouteTable retried on
    InvalidRouteTableID.NotFound, waitRouteTableAssociationCreated),
    resourceRouteTableAssociationRead (RetryWhenNewResourceNotFound
    findRouteTableAssociationByID), resourceRouteTableAssociationUpdate
    (ReplaceRouteTableAssociation, waitRouteTableAssociationUpdated on the new id),
    resourceRouteTableAssociationDelete (routeTableAssociationDelete); find.go
    findRouteTableAssociationByID; wait.go waitRouteTableAssociationCreated/Updated/Deleted;
    status.go statusRouteTableAssociation."""
    vpc_id = make_vpc(ec2, undo, "10.67.0.0/16")
    subnet_id = make_subnet(ec2, undo, vpc_id, "10.67.1.0/24", zones[0])
    rt_a = make_route_table(ec2, undo, vpc_id)
    rt_b = make_route_table(ec2, undo, vpc_id)

    assoc_id = retry_when_codes(ec2.associate_route_table, ("InvalidRouteTableID.NotFound",), "AssociateRouteTable",
                                RouteTableId=rt_a, SubnetId=subnet_id)["AssociationId"]
    undo.push(lambda: ec2.disassociate_route_table(AssociationId=assoc_id))
    state_change(lambda: status_route_table_association(ec2, assoc_id), pending=["associating"], target=["associated"],
                 not_found_checks=1000, what="waitRouteTableAssociationCreated")

    def refresh(association_id):
        assoc = find_route_table_association(ec2, association_id)
        assert assoc is not None, f"resourceRouteTableAssociationRead: {association_id} not found"
        return assoc

    assoc = retry_until_found(lambda: find_route_table_association(ec2, assoc_id), "resourceRouteTableAssociationRead (new)")
    assert assoc.get("RouteTableId") == rt_a and assoc.get("SubnetId") == subnet_id, assoc
    refresh(assoc_id)

    # Update: route_table_id -> another table.
    resp = tolerate(ec2.replace_route_table_association, ("InvalidAssociationID.NotFound",),
                    AssociationId=assoc_id, RouteTableId=rt_b)
    assert resp is not None, "ReplaceRouteTableAssociation: InvalidAssociationID.NotFound for a live association"
    new_id = resp["NewAssociationId"]
    undo.push(lambda: ec2.disassociate_route_table(AssociationId=new_id))
    state_change(lambda: status_route_table_association(ec2, new_id), pending=["associating"], target=["associated"],
                 what="waitRouteTableAssociationUpdated")
    assoc = refresh(new_id)
    assert assoc.get("RouteTableId") == rt_b and assoc.get("SubnetId") == subnet_id, assoc

    # Delete.
    route_table_association_delete(ec2, new_id)
    assert find_route_table_association(ec2, new_id) is None


# --------------------------------------------------------------------------------------------
# aws_security_group


def test_aws_security_group(ec2, undo):
    """aws_security_group. Written from vpc_security_group.go resourceSecurityGroupCreate
    (CreateSecurityGroup, waitSecurityGroupCreated, RevokeSecurityGroupEgress of the default
    IPv4 allow-all rule, then of the IPv6 one with InvalidPermission.NotFound and
    InvalidParameterValue "remote-ipv6-range" tolerated, then resourceSecurityGroupUpdate),
    resourceSecurityGroupRead (findSecurityGroupByID, securityGroupIPPermGather),
    resourceSecurityGroupUpdate (findSecurityGroupByID, updateSecurityGroupRules:
    AuthorizeSecurityGroupIngress for an added inline ingress rule; tags),
    resourceSecurityGroupDelete (deleteLingeringENIs group-id, DeleteSecurityGroup retried on
    DependencyViolation/InvalidGroup.InUse, InvalidGroup.NotFound tolerated, RetryUntilNotFound);
    find.go findSecurityGroupByID; wait.go waitSecurityGroupCreated; status.go statusSecurityGroup."""
    vpc_id = make_vpc(ec2, undo, "10.68.0.0/16")
    name = unique("tf-replay-sg")

    sg_id = ec2.create_security_group(
        GroupName=name, TagSpecifications=tag_spec("security-group", TAGS_BEFORE),
        Description="Managed by Terraform", VpcId=vpc_id,
    )["GroupId"]
    undo.push(lambda: ec2.delete_security_group(GroupId=sg_id))
    state_change(lambda: (lambda g: (g, "Created") if g else (None, ""))(find_security_group(ec2, sg_id)),
                 pending=[], target=["Created"], not_found_checks=1000, continuous_target_occurrence=3,
                 what="waitSecurityGroupCreated")
    ec2.revoke_security_group_egress(GroupId=sg_id, IpPermissions=[
        {"FromPort": 0, "ToPort": 0, "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "IpProtocol": "-1"}])
    try:
        ec2.revoke_security_group_egress(GroupId=sg_id, IpPermissions=[
            {"FromPort": 0, "ToPort": 0, "Ipv6Ranges": [{"CidrIpv6": "::/0"}], "IpProtocol": "-1"}])
    except ClientError as err:
        tolerated = code_of(err) == "InvalidPermission.NotFound" or (
            code_of(err) == "InvalidParameterValue" and "remote-ipv6-range" in err.response["Error"].get("Message", ""))
        if not tolerated:
            raise
    assert find_security_group(ec2, sg_id) is not None  # resourceSecurityGroupUpdate's find; no rule changes

    def refresh():
        sg = find_security_group(ec2, sg_id)
        assert sg is not None, f"resourceSecurityGroupRead: {sg_id} not found"
        check_permissions_shape(sg.get("IpPermissions"), "IpPermissions")
        check_permissions_shape(sg.get("IpPermissionsEgress"), "IpPermissionsEgress")
        assert sg.get("OwnerId"), "resourceSecurityGroupRead builds the ARN from OwnerId"
        return sg

    sg = refresh()
    assert sg["GroupName"] == name and sg.get("Description") == "Managed by Terraform" and sg.get("VpcId") == vpc_id, sg
    assert not sg.get("IpPermissionsEgress"), f"the default egress rule survived the provider's revoke: {sg['IpPermissionsEgress']}"
    assert not sg.get("IpPermissions"), sg
    assert_tags(sg, TAGS_BEFORE, "aws_security_group")
    refresh()

    # Update: an inline ingress rule, and the tags.
    assert find_security_group(ec2, sg_id) is not None
    ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    update_tags(ec2, sg_id, TAGS_BEFORE, TAGS_AFTER)
    sg = refresh()
    rule, _ = find_rule_match({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
                              sg.get("IpPermissions"))
    assert rule is not None, sg.get("IpPermissions")
    assert_tags(sg, TAGS_AFTER, "aws_security_group after update")

    # Delete.
    enis = pages(ec2.describe_network_interfaces, "NetworkInterfaces", ("InvalidNetworkInterfaceID.NotFound",),
                 Filters=[{"Name": "group-id", "Values": [sg_id]}])
    assert enis is not None, "deleteLingeringENIs: DescribeNetworkInterfaces group-id answered NotFound"
    retry_when_codes(lambda: tolerate(ec2.delete_security_group, ("InvalidGroup.NotFound",), GroupId=sg_id),
                     ("DependencyViolation", "InvalidGroup.InUse"), "DeleteSecurityGroup")
    retry_until_not_found(lambda: find_security_group(ec2, sg_id), "resourceSecurityGroupDelete RetryUntilNotFound")
    assert find_security_group(ec2, sg_id) is None


# --------------------------------------------------------------------------------------------
# aws_security_group_rule


def test_aws_security_group_rule(ec2, undo):
    """aws_security_group_rule (type = ingress, cidr_blocks, description). Written from
    vpc_security_group_rule.go resourceSecurityGroupRuleCreate (findSecurityGroupByID,
    expandIPPermission, AuthorizeSecurityGroupIngress by GroupId for a VPC group, reading
    SecurityGroupRules[0] for security_group_rule_id, then RetryWhenNotFound on findRuleMatch),
    resourceSecurityGroupRuleRead (findSecurityGroupByID, findRuleMatch),
    resourceSecurityGroupRuleUpdate (description: UpdateSecurityGroupRuleDescriptionsIngress),
    resourceSecurityGroupRuleDelete (RevokeSecurityGroupIngress with the IpPermission,
    InvalidPermission.NotFound tolerated); find.go findSecurityGroupByID."""
    vpc_id = make_vpc(ec2, undo, "10.69.0.0/16")
    sg_id = make_security_group(ec2, undo, vpc_id)

    def permission(description):
        return {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "IpRanges": [{"CidrIp": "10.20.0.0/16", "Description": description}]}

    def refresh():
        sg = find_security_group(ec2, sg_id)
        assert sg is not None, f"resourceSecurityGroupRuleRead: {sg_id} not found"
        check_permissions_shape(sg.get("IpPermissions"), "IpPermissions")
        return find_rule_match(permission("ignored"), sg.get("IpPermissions"))

    # Create.
    assert find_security_group(ec2, sg_id) is not None
    out = ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[permission("https in")])
    undo.push(lambda: ec2.revoke_security_group_ingress(GroupId=sg_id, IpPermissions=[permission("x")]))
    # The provider stores SecurityGroupRules[0].SecurityGroupRuleId as security_group_rule_id
    # when exactly one rule comes back (AWS returns it); without it the attribute stays empty.
    rules = out.get("SecurityGroupRules") or []
    assert len(rules) == 1 and rules[0].get("SecurityGroupRuleId"), (
        f"AuthorizeSecurityGroupIngress answered SecurityGroupRules={rules}: security_group_rule_id stays empty")
    retry_until_found(lambda: refresh()[0], "resourceSecurityGroupRuleCreate RetryWhenNotFound findRuleMatch")
    rule, description = refresh()
    assert rule is not None and description == "https in", (rule, description)
    refresh()

    # Update: description.
    assert find_security_group(ec2, sg_id) is not None
    ec2.update_security_group_rule_descriptions_ingress(GroupId=sg_id, IpPermissions=[permission("https from the lan")])
    rule, description = refresh()
    assert rule is not None and description == "https from the lan", (rule, description)

    # Delete.
    assert find_security_group(ec2, sg_id) is not None
    tolerate(ec2.revoke_security_group_ingress, ("InvalidPermission.NotFound",),
             GroupId=sg_id, IpPermissions=[permission("https from the lan")])
    rule, _ = refresh()
    assert rule is None, f"the rule is still there after RevokeSecurityGroupIngress: {rule}"


# --------------------------------------------------------------------------------------------
# aws_vpc_security_group_ingress_rule


def find_security_group_ingress_rule(ec2, rule_id):
    """findSecurityGroupIngressRuleByID: findSecurityGroupRuleByID, egress rules are NotFound."""
    rule = single(pages(ec2.describe_security_group_rules, "SecurityGroupRules", ("InvalidSecurityGroupRuleId.NotFound",),
                        SecurityGroupRuleIds=[rule_id]), "DescribeSecurityGroupRules")
    if rule is None or rule.get("SecurityGroupRuleId") != rule_id or rule.get("IsEgress"):
        return None
    return rule


def test_aws_vpc_security_group_ingress_rule(ec2, undo):
    """aws_vpc_security_group_ingress_rule. Written from vpc_security_group_ingress_rule.go
    (create: AuthorizeSecurityGroupIngress with one IpPermission and TagSpecifications of
    security-group-rule, reading SecurityGroupRules[0].SecurityGroupRuleId unguarded) and
    vpc_security_group_rule.go securityGroupRuleResource Create (then createTags on the rule id),
    Read (findSecurityGroupIngressRuleByID), Update (ModifySecurityGroupRules with a
    SecurityGroupRuleRequest; tags by updateTags), Delete (RevokeSecurityGroupIngress by
    SecurityGroupRuleIds, InvalidGroup.NotFound and InvalidSecurityGroupRuleId.NotFound
    tolerated); find.go findSecurityGroupRuleByID."""
    vpc_id = make_vpc(ec2, undo, "10.70.0.0/16")
    sg_id = make_security_group(ec2, undo, vpc_id)

    out = ec2.authorize_security_group_ingress(
        GroupId=sg_id,
        IpPermissions=[{"FromPort": 8080, "IpProtocol": "tcp", "ToPort": 8080,
                        "IpRanges": [{"CidrIp": "10.30.0.0/16", "Description": "web"}]}],
        TagSpecifications=tag_spec("security-group-rule", TAGS_BEFORE),
    )
    rules = out.get("SecurityGroupRules") or []
    assert rules and rules[0].get("SecurityGroupRuleId"), (
        f"AuthorizeSecurityGroupIngress answered SecurityGroupRules={rules}: the provider indexes [0] (a panic)")
    rule_id = rules[0]["SecurityGroupRuleId"]
    undo.push(lambda: ec2.revoke_security_group_ingress(GroupId=sg_id, SecurityGroupRuleIds=[rule_id]))
    ec2.create_tags(Resources=[rule_id], Tags=tag_list(TAGS_BEFORE))  # createTags(getTagsIn)

    def refresh():
        rule = find_security_group_ingress_rule(ec2, rule_id)
        assert rule is not None, f"securityGroupRuleResource.Read: {rule_id} not found"
        return rule

    rule = refresh()
    assert (rule.get("GroupId"), rule.get("IpProtocol"), rule.get("FromPort"), rule.get("ToPort"), rule.get("CidrIpv4"),
            rule.get("Description")) == (sg_id, "tcp", 8080, 8080, "10.30.0.0/16", "web"), rule
    assert_tags(rule, TAGS_BEFORE, "aws_vpc_security_group_ingress_rule")
    refresh()

    # Update: port and description (ModifySecurityGroupRules), and the tags.
    ec2.modify_security_group_rules(GroupId=sg_id, SecurityGroupRules=[{
        "SecurityGroupRuleId": rule_id,
        "SecurityGroupRule": {"CidrIpv4": "10.30.0.0/16", "Description": "web, moved", "FromPort": 8081,
                              "IpProtocol": "tcp", "ToPort": 8081},
    }])
    update_tags(ec2, rule_id, TAGS_BEFORE, TAGS_AFTER)
    rule = refresh()
    assert (rule.get("FromPort"), rule.get("ToPort"), rule.get("Description")) == (8081, 8081, "web, moved"), rule
    assert_tags(rule, TAGS_AFTER, "aws_vpc_security_group_ingress_rule after update")

    # Delete.
    tolerate(ec2.revoke_security_group_ingress, ("InvalidGroup.NotFound", "InvalidSecurityGroupRuleId.NotFound"),
             GroupId=sg_id, SecurityGroupRuleIds=[rule_id])
    assert find_security_group_ingress_rule(ec2, rule_id) is None


# --------------------------------------------------------------------------------------------
# aws_instance


def refresh_instance(ec2, instance_id):
    """resourceInstanceRead: DescribeInstances, DescribeInstanceTypes, DescribeTags (launch
    template tag), DescribeVpcs (readSecurityGroups), DescribeInstanceAttribute
    instanceInitiatedShutdownBehavior, DescribeVolumes (readBlockDevices),
    DescribeInstanceAttribute disableApiStop, disableApiTermination and userData, and
    DescribeInstanceCreditSpecifications when the type is burstable (UnsupportedOperation
    tolerated). Returns what the state would hold."""
    inst = find_instance(ec2, instance_id)
    assert inst is not None, f"resourceInstanceRead: {instance_id} not found"
    info = find_instance_type(ec2, inst["InstanceType"])
    for ni in inst.get("NetworkInterfaces") or []:
        assert "DeviceIndex" in (ni.get("Attachment") or {}), (
            f"resourceInstanceRead dereferences NetworkInterfaces[].Attachment.DeviceIndex: {ni}")
    # flattenInstanceLaunchTemplate -> findInstanceLaunchTemplateID -> findInstanceTagValue
    lt_tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]},
                                         {"Name": "key", "Values": ["aws:ec2launchtemplate:id"]}])["Tags"]
    assert len(lt_tags) <= 1, lt_tags
    # readSecurityGroups: only a WARN on error, but then security_groups/vpc_security_group_ids
    # are guessed wrong.
    if inst.get("VpcId"):
        assert find_vpc(ec2, inst["VpcId"]) is not None, f"readSecurityGroups: the instance's VPC {inst['VpcId']} is not found"
    ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
    volume_ids = [m["Ebs"]["VolumeId"] for m in inst.get("BlockDeviceMappings") or [] if m.get("Ebs")]
    if volume_ids:
        assert inst.get("RootDeviceName"), "blockDeviceIsRoot needs RootDeviceName"
        volumes = ec2.describe_volumes(VolumeIds=volume_ids)["Volumes"]
        assert sorted(v["VolumeId"] for v in volumes) == sorted(volume_ids), volumes
    stop = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiStop")
    assert "Value" in (stop.get("DisableApiStop") or {}), f"resourceInstanceRead dereferences DisableApiStop.Value: {stop}"
    term = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    assert "Value" in (term.get("DisableApiTermination") or {}), (
        f"resourceInstanceRead dereferences DisableApiTermination.Value: {term}")
    user_data = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData").get("UserData") or {}
    credits = None
    if info.get("BurstablePerformanceSupported"):
        specs = tolerate(lambda **p: pages(ec2.describe_instance_credit_specifications, "InstanceCreditSpecifications",
                                           ("InvalidInstanceID.NotFound",), **p),
                         ("UnsupportedOperation",), InstanceIds=[instance_id])
        spec = single(specs, "DescribeInstanceCreditSpecifications")
        if spec is not None and spec.get("InstanceId") == instance_id:
            credits = spec.get("CpuCredits")
    return {
        "instance": inst,
        "type_info": info,
        "disable_api_stop": stop["DisableApiStop"]["Value"],
        "disable_api_termination": term["DisableApiTermination"]["Value"],
        "user_data": base64.b64decode(user_data["Value"]).decode() if user_data.get("Value") else None,
        "cpu_credits": credits,
    }


def modify_instance_attribute_with_stop_start(ec2, instance_id, **attribute):
    """modifyInstanceAttributeWithStopStart: stopInstance (StopInstances Force=false,
    waitInstanceStopped), ModifyInstanceAttribute, startInstance (StartInstances retried on
    InvalidParameterValue "LaunchPlan instance type does not match attribute value",
    waitInstanceStarted)."""
    ec2.stop_instances(Force=False, InstanceIds=[instance_id])
    state_change(lambda: status_instance(ec2, instance_id), pending=["pending", "running", "shutting-down", "stopping"],
                 target=["stopped"], what="waitInstanceStopped")
    ec2.modify_instance_attribute(InstanceId=instance_id, **attribute)
    deadline = time.monotonic() + RETRY_TIMEOUT_S
    while True:
        try:
            ec2.start_instances(InstanceIds=[instance_id])
            break
        except ClientError as err:
            if not (code_of(err) == "InvalidParameterValue"
                    and "LaunchPlan instance type does not match attribute value" in err.response["Error"].get("Message", "")
                    and time.monotonic() < deadline):
                raise
        time.sleep(POLL_INTERVAL_S)
    state_change(lambda: status_instance(ec2, instance_id), pending=["pending", "stopped"], target=["running"],
                 what="waitInstanceStarted")


def test_aws_instance(ec2, undo, tracker, image_id, instance_type, other_instance_type):
    """aws_instance (ami, instance_type t3.*, user_data, tags). Written from ec2_instance.go
    resourceInstanceCreate (buildInstanceOpts defaults: CreditSpecification unlimited for t3,
    DisableApiTermination/EbsOptimized false, HibernationOptions.Configured false, Monitoring
    false, Placement.AvailabilityZone ""; RunInstances; waitInstanceCreated; then
    resourceInstanceUpdate, which does nothing for a new instance with source_dest_check true),
    resourceInstanceRead (see refresh_instance), the instance_type CustomizeDiff
    (findInstanceTypeByName for both types, ProcessorInfo.SupportedArchitectures),
    resourceInstanceUpdate (tags; instance_type and user_data through
    modifyInstanceAttributeWithStopStart; source_dest_check; disableInstanceAPIStop;
    disableInstanceAPITermination; ModifyInstanceCreditSpecification), resourceInstanceDelete
    (disableInstanceAPITermination false and disableInstanceAPIStop with the state's value, errors
    only logged; terminateInstance: TerminateInstances, InvalidInstanceID.NotFound tolerated,
    waitInstanceDeleted, which needs to see `terminated`); find.go findInstanceByID/
    findInstanceTypeByName/findInstanceCreditSpecificationByID; status.go statusInstance."""
    assert instance_type.startswith("t3") and other_instance_type.startswith("t3"), "the replay configures t3 types"
    tags = {"Name": unique("tf-instance"), "Gone": "soon"}

    # Create.
    resp = ec2.run_instances(
        ClientToken=client_token(),
        CreditSpecification={"CpuCredits": "unlimited"},
        DisableApiTermination=False,
        EbsOptimized=False,
        HibernationOptions={"Configured": False},
        ImageId=image_id,
        InstanceType=instance_type,
        MaxCount=1,
        MinCount=1,
        Monitoring={"Enabled": False},
        Placement={"AvailabilityZone": ""},
        TagSpecifications=tag_spec("instance", tags),
        UserData="#!/bin/sh\necho first\n",
    )
    instance_id = resp["Instances"][0]["InstanceId"]
    tracker.instances([instance_id])
    undo.instance(instance_id)
    state_change(lambda: status_instance(ec2, instance_id), pending=["pending"], target=["running"],
                 what="waitInstanceCreated")
    state = refresh_instance(ec2, instance_id)
    inst = state["instance"]
    assert inst["InstanceType"] == instance_type and inst["ImageId"] == image_id, inst
    assert_tags(inst, tags, "aws_instance")
    assert state["user_data"] == "#!/bin/sh\necho first\n", state["user_data"]
    assert state["disable_api_stop"] is False and state["disable_api_termination"] is False, state
    assert state["type_info"].get("BurstablePerformanceSupported") is True, (
        f"{instance_type} is burstable: DescribeInstanceTypes must say BurstablePerformanceSupported")
    # The configuration has no credit_specification block yet, so a tolerated
    # UnsupportedOperation (None) would not show in a plan; a value must be what was launched.
    assert state["cpu_credits"] in (None, "unlimited"), f"credit_specification reads back {state['cpu_credits']!r}, launched unlimited"

    refresh_instance(ec2, instance_id)  # terraform plan

    # Update 1: tags.
    new_tags = {"Name": tags["Name"], "Added": "yes"}
    update_tags(ec2, instance_id, tags, new_tags)
    state = refresh_instance(ec2, instance_id)
    assert_tags(state["instance"], new_tags, "aws_instance after the tag update")

    # Update 2: instance_type and user_data in one apply. The plan first runs the
    # instance_type CustomizeDiff: both types, and their architectures.
    for t in (instance_type, other_instance_type):
        info = find_instance_type(ec2, t)
        assert (info.get("ProcessorInfo") or {}).get("SupportedArchitectures"), (
            f"the instance_type CustomizeDiff dereferences ProcessorInfo.SupportedArchitectures of {t}: {info}")
    modify_instance_attribute_with_stop_start(ec2, instance_id, InstanceType={"Value": other_instance_type})
    modify_instance_attribute_with_stop_start(ec2, instance_id, UserData={"Value": b"#!/bin/sh\necho second\n"})
    state = refresh_instance(ec2, instance_id)
    assert state["instance"]["InstanceType"] == other_instance_type, state["instance"]["InstanceType"]
    assert state["instance"]["State"]["Name"] == "running"
    assert state["user_data"] == "#!/bin/sh\necho second\n", state["user_data"]

    # Update 3: source_dest_check = false, disable_api_stop = true,
    # disable_api_termination = true, credit_specification { cpu_credits = "standard" }.
    ec2.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": False})
    ec2.modify_instance_attribute(DisableApiStop={"Value": True}, InstanceId=instance_id)
    ec2.modify_instance_attribute(DisableApiTermination={"Value": True}, InstanceId=instance_id)
    ec2.modify_instance_credit_specification(
        ClientToken=client_token(),
        InstanceCreditSpecifications=[{"CpuCredits": "standard", "InstanceId": instance_id}])
    state = refresh_instance(ec2, instance_id)
    inst = state["instance"]
    if inst.get("SubnetId"):
        assert inst.get("SourceDestCheck") is False, f"source_dest_check reads back {inst.get('SourceDestCheck')}"
    assert state["disable_api_stop"] is True and state["disable_api_termination"] is True, state
    assert state["cpu_credits"] == "standard", f"credit_specification reads back {state['cpu_credits']!r}, set standard"

    # Delete: both calls' errors are only logged.
    for attribute in ({"DisableApiTermination": {"Value": False}}, {"DisableApiStop": {"Value": True}}):
        try:
            ec2.modify_instance_attribute(InstanceId=instance_id, **attribute)
        except ClientError:
            pass
    if tolerate(ec2.terminate_instances, ("InvalidInstanceID.NotFound",), InstanceIds=[instance_id]) is not None:
        state_change(lambda: status_instance(ec2, instance_id),
                     pending=["pending", "running", "shutting-down", "stopping", "stopped"], target=["terminated"],
                     what="waitInstanceDeleted")
    assert find_instance(ec2, instance_id) is None


# --------------------------------------------------------------------------------------------
# aws_eip


def test_aws_eip(ec2, undo, tracker, image_id, instance_type):
    """aws_eip (domain = "vpc", then instance = ...). Written from ec2_eip.go resourceEIPCreate
    (AllocateAddress, RetryWhenNotFound findEIPByAllocationID), resourceEIPRead
    (findEIPByAllocationID, findEIPDomainNameAttributeByAllocationID: DescribeAddressesAttribute
    domain-name), resourceEIPUpdate (associateEIP: AssociateAddress, RetryWhen
    findEIPByAssociationID; tags), resourceEIPDelete (disassociateEIP: DisassociateAddress,
    InvalidAssociationID.NotFound tolerated; ReleaseAddress with NetworkBorderGroup from state,
    InvalidAllocationID.NotFound tolerated); find.go findEIPs/findEIPByAllocationID/
    findEIPByAssociationID/findEIPAttributes."""
    instance = launch_running(ec2, undo, tracker, image_id, instance_type)
    instance_id = instance["InstanceId"]

    allocation_id = ec2.allocate_address(Domain="vpc", TagSpecifications=tag_spec("elastic-ip", TAGS_BEFORE))["AllocationId"]
    undo.push(lambda: ec2.release_address(AllocationId=allocation_id))
    retry_until_found(lambda: find_eip(ec2, allocation_id), "resourceEIPCreate RetryWhenNotFound")
    addr = refresh_eip(ec2, allocation_id)
    assert addr.get("Domain") == "vpc" and addr.get("PublicIp"), addr
    assert_tags(addr, TAGS_BEFORE, "aws_eip")
    refresh_eip(ec2, allocation_id)

    # Update: associate with the instance, and the tags.
    association_id = ec2.associate_address(AllocationId=allocation_id, InstanceId=instance_id).get("AssociationId")
    assert association_id, "AssociateAddress answered no AssociationId (findEIPByAssociationID looks it up)"
    undo.push(lambda: ec2.disassociate_address(AssociationId=association_id))
    retry_until_found(lambda: find_eip_by_association(ec2, association_id), "associateEIP findEIPByAssociationID")
    update_tags(ec2, allocation_id, TAGS_BEFORE, TAGS_AFTER)
    addr = refresh_eip(ec2, allocation_id)
    assert addr.get("InstanceId") == instance_id and addr.get("AssociationId") == association_id, addr
    assert_tags(addr, TAGS_AFTER, "aws_eip after update")

    # Delete: ReleaseAddress carries network_border_group from state, which the read filled in
    # from DescribeAddresses' NetworkBorderGroup.
    tolerate(ec2.disassociate_address, ("InvalidAssociationID.NotFound",), AssociationId=association_id)
    release = {"AllocationId": allocation_id}
    if addr.get("NetworkBorderGroup"):
        release["NetworkBorderGroup"] = addr["NetworkBorderGroup"]
    tolerate(ec2.release_address, ("InvalidAllocationID.NotFound",), **release)
    assert find_eip(ec2, allocation_id) is None


# --------------------------------------------------------------------------------------------
# aws_key_pair


def test_aws_key_pair(ec2, tracker):
    """aws_key_pair (public_key, tags). Written from ec2_key_pair.go resourceKeyPairCreate
    (ImportKeyPair with TagSpecifications of key-pair), resourceKeyPairRead (findKeyPairByName:
    DescribeKeyPairs KeyNames, InvalidKeyPair.NotFound is NotFound), resourceKeyPairUpdate (tags
    only, on the key_pair_id), resourceKeyPairDelete (DeleteKeyPair, no error tolerated);
    find.go findKeyPairByName."""
    name = tracker.key(f"conf-{RUN_ID}-{unique('tf')}")

    def find():
        resp = describe_or_none(ec2.describe_key_pairs, ("InvalidKeyPair.NotFound",), KeyNames=[name])
        key = single(resp.get("KeyPairs") if resp else None, "DescribeKeyPairs")
        return key if key and key.get("KeyName") == name else None

    out = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=PUBLIC_KEY.encode(),
                              TagSpecifications=tag_spec("key-pair", TAGS_BEFORE))
    assert out["KeyName"] == name

    def refresh():
        key = find()
        assert key is not None, f"resourceKeyPairRead: {name} not found"
        for member in ("KeyFingerprint", "KeyPairId", "KeyType"):
            assert key.get(member), f"resourceKeyPairRead sets {member}: {key}"
        return key

    key = refresh()
    assert key["KeyType"] == "ed25519", key
    assert_tags(key, TAGS_BEFORE, "aws_key_pair")
    refresh()

    update_tags(ec2, key["KeyPairId"], TAGS_BEFORE, TAGS_AFTER)
    key = refresh()
    assert_tags(key, TAGS_AFTER, "aws_key_pair after update")

    ec2.delete_key_pair(KeyName=name)
    assert find() is None


# --------------------------------------------------------------------------------------------
# aws_ebs_volume


def test_aws_ebs_volume(ec2, storage, zones):
    """aws_ebs_volume (availability_zone, size, type gp3, tags). Written from ebs_volume.go
    resourceEBSVolumeCreate (CreateVolume with ClientToken, waitVolumeCreated),
    resourceEBSVolumeRead (findEBSVolumeByID; CreateTime is formatted without a nil check),
    resourceEBSVolumeUpdate (size: ModifyVolume with Size, and Throughput because the state holds
    gp3's throughput; waitVolumeUpdated; tags), resourceEBSVolumeDelete (DeleteVolume retried on
    VolumeInUse, InvalidVolume.NotFound tolerated, waitVolumeDeleted); find.go findEBSVolumeByID;
    wait.go waitVolumeCreated/waitVolumeUpdated/waitVolumeDeleted; status.go statusVolume."""
    volume_id = ec2.create_volume(
        AvailabilityZone=zones[0], ClientToken=client_token(), Size=1, VolumeType="gp3",
        TagSpecifications=tag_spec("volume", TAGS_BEFORE),
    )["VolumeId"]
    storage.volume(volume_id)
    state_change(lambda: status_volume(ec2, volume_id), pending=["creating"], target=["available"], what="waitVolumeCreated")

    def refresh():
        vol = find_volume(ec2, volume_id)
        assert vol is not None, f"resourceEBSVolumeRead: {volume_id} not found"
        assert vol.get("CreateTime"), "resourceEBSVolumeRead formats CreateTime without a nil check"
        return vol

    vol = refresh()
    assert (vol["AvailabilityZone"], vol["Size"], vol["VolumeType"]) == (zones[0], 1, "gp3"), vol
    assert_tags(vol, TAGS_BEFORE, "aws_ebs_volume")
    refresh()

    # Update: size 1 -> 2, and the tags.
    modify = {"VolumeId": volume_id, "Size": 2}
    if vol.get("Throughput", 0) > 0:
        modify["Throughput"] = vol["Throughput"]
    ec2.modify_volume(**modify)
    state_change(lambda: status_volume(ec2, volume_id), pending=["creating", "modifying"], target=["available", "in-use"],
                 what="waitVolumeUpdated")
    update_tags(ec2, volume_id, TAGS_BEFORE, TAGS_AFTER)
    vol = refresh()
    assert vol["Size"] == 2, vol
    assert_tags(vol, TAGS_AFTER, "aws_ebs_volume after update")

    # Delete.
    resp = retry_when_codes(lambda: tolerate(ec2.delete_volume, ("InvalidVolume.NotFound",), VolumeId=volume_id),
                            ("VolumeInUse",), "DeleteVolume")
    if resp is not None:
        state_change(lambda: status_volume(ec2, volume_id), pending=["deleting"], target=[], what="waitVolumeDeleted")
    assert find_volume(ec2, volume_id) is None


# --------------------------------------------------------------------------------------------
# aws_volume_attachment


def test_aws_volume_attachment(ec2, undo, tracker, storage, image_id, instance_type):
    """aws_volume_attachment (device_name /dev/sdh). Written from ebs_volume_attachment.go
    resourceVolumeAttachmentCreate (findVolumeAttachment expecting NotFound,
    waitVolumeAttachmentInstanceReady, AttachVolume, waitVolumeAttachmentCreated),
    resourceVolumeAttachmentRead (findVolumeAttachment), resourceVolumeAttachmentDelete
    (DetachVolume with Force=false, IncorrectState "available" tolerated,
    waitVolumeAttachmentDeleted: only `detaching` may be seen before NotFound); there is no
    update (every argument forces a new resource). find.go findEBSVolume; wait.go
    waitVolumeAttachmentCreated; status.go statusVolumeAttachment."""
    instance = launch_running(ec2, undo, tracker, image_id, instance_type)
    instance_id = instance["InstanceId"]
    zone = instance["Placement"]["AvailabilityZone"]
    volume_id = ec2.create_volume(AvailabilityZone=zone, Size=1, TagSpecifications=tag_spec("volume", {}))["VolumeId"]
    storage.volume(volume_id)
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    device = "/dev/sdh"

    # Create.
    assert find_volume_attachment(ec2, volume_id, instance_id, device) is None, "already attached?"
    state_change(lambda: status_instance(ec2, instance_id), pending=["pending", "stopping"], target=["running", "stopped"],
                 what="waitVolumeAttachmentInstanceReady")
    ec2.attach_volume(Device=device, InstanceId=instance_id, VolumeId=volume_id)
    undo.push(lambda: ec2.detach_volume(VolumeId=volume_id, Force=True))
    state_change(lambda: status_volume_attachment(ec2, volume_id, instance_id, device), pending=["attaching"],
                 target=["attached"], what="waitVolumeAttachmentCreated")

    def refresh():
        att = find_volume_attachment(ec2, volume_id, instance_id, device)
        assert att is not None, "resourceVolumeAttachmentRead: attachment not found"
        return att

    refresh()
    refresh()

    # Delete.
    resp = tolerate(ec2.detach_volume, ("IncorrectState",), "available",
                    Device=device, Force=False, InstanceId=instance_id, VolumeId=volume_id)
    if resp is not None:
        state_change(lambda: status_volume_attachment(ec2, volume_id, instance_id, device), pending=["detaching"],
                     target=[], what="waitVolumeAttachmentDeleted")
    assert find_volume_attachment(ec2, volume_id, instance_id, device) is None


# --------------------------------------------------------------------------------------------
# aws_ami and aws_ami_from_instance


def refresh_image(ec2, image_id):
    """resourceAMIRead (shared by aws_ami, aws_ami_copy and aws_ami_from_instance)."""
    img = find_image(ec2, image_id)
    assert img is not None, f"resourceAMIRead: {image_id} not found"
    assert img["State"] != "pending", "resourceAMIRead would wait again: the image is still pending after create"
    return img


def update_image_description(ec2, image_id, description):
    """updateDescription: ModifyImageAttribute Description, then waitImageDescriptionUpdated
    (findImageByID until the description matches)."""
    ec2.modify_image_attribute(Description={"Value": description}, ImageId=image_id)
    state_change(lambda: (lambda i: (i, str(i.get("Description") == description)) if i else (None, ""))(find_image(ec2, image_id)),
                 pending=[], target=["True"], what="waitImageDescriptionUpdated")


def wait_image_deleted(ec2, image_id):
    state_change(lambda: status_image(ec2, image_id), pending=["available", "failed", "pending"], target=[],
                 what="waitImageDeleted")


def test_aws_ami(ec2, storage, zones, run_id):
    """aws_ami (registered from a snapshot: root_device_name, virtualization_type hvm,
    ebs_block_device with snapshot_id). Written from ec2_ami.go resourceAMICreate
    (RegisterImage with the schema defaults: Architecture x86_64, EnaSupport false,
    ImageLocation "", SriovNetSupport "simple", and the ebs_block_device defaults
    DeleteOnTermination true, VolumeType standard; createTags; waitImageAvailable),
    resourceAMIRead (findImageByID), resourceAMIUpdate (updateDescription; tags),
    resourceAMIDelete (DeregisterImage with InvalidAMIID.NotFound/InvalidAMIID.Unavailable
    tolerated, no snapshot deletion since manage_ebs_snapshots is false, waitImageDeleted);
    find.go findImageByID; wait.go waitImageAvailable/waitImageDeleted; status.go statusImage."""
    volume_id = ec2.create_volume(AvailabilityZone=zones[0], Size=1, TagSpecifications=tag_spec("volume", {}))["VolumeId"]
    storage.volume(volume_id)
    wait_for(ec2, "volume_available", VolumeIds=[volume_id])
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=tag_spec("snapshot", {}))["SnapshotId"]
    storage.snapshot(snapshot_id)
    wait_for(ec2, "snapshot_completed", SnapshotIds=[snapshot_id])
    name = f"conf-{run_id}-{unique('tf-ami')}"

    # aws.String(d.Get(...)) of unset optional strings is still sent: ImageLocation="" and,
    # had no description been configured, Description="".
    image_id = ec2.register_image(
        Architecture="x86_64",
        Description="registered by the replay",
        EnaSupport=False,
        ImageLocation="",
        Name=name,
        RootDeviceName="/dev/xvda",
        SriovNetSupport="simple",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                              "Ebs": {"DeleteOnTermination": True, "SnapshotId": snapshot_id, "VolumeType": "standard"}}],
    )["ImageId"]
    storage.image(image_id)
    ec2.create_tags(Resources=[image_id], Tags=tag_list(TAGS_BEFORE))
    state_change(lambda: status_image(ec2, image_id), pending=["pending"], target=["available"], what="waitImageAvailable")

    img = refresh_image(ec2, image_id)
    assert (img["Name"], img.get("RootDeviceName"), img.get("VirtualizationType")) == (name, "/dev/xvda", "hvm"), img
    root = [m for m in img.get("BlockDeviceMappings") or [] if m.get("DeviceName") == "/dev/xvda"]
    assert root and (root[0].get("Ebs") or {}).get("SnapshotId") == snapshot_id, img.get("BlockDeviceMappings")
    assert_tags(img, TAGS_BEFORE, "aws_ami")
    refresh_image(ec2, image_id)

    update_image_description(ec2, image_id, "described again")
    update_tags(ec2, image_id, TAGS_BEFORE, TAGS_AFTER)
    img = refresh_image(ec2, image_id)
    assert img.get("Description") == "described again"
    assert_tags(img, TAGS_AFTER, "aws_ami after update")

    if tolerate(ec2.deregister_image, ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"), ImageId=image_id) is not None:
        wait_image_deleted(ec2, image_id)
    assert find_image(ec2, image_id) is None


def test_aws_ami_from_instance(ec2, undo, tracker, storage, image_id, instance_type, run_id):
    """aws_ami_from_instance (source_instance_id, tags). Written from ec2_ami_from_instance.go
    resourceAMIFromInstanceCreate (CreateImage with Description "", NoReboot false and
    TagSpecifications of image; manage_ebs_snapshots = true; waitImageAvailable), and the
    shared ec2_ami.go resourceAMIRead, resourceAMIUpdate (updateDescription; tags) and
    resourceAMIDelete (DeregisterImage, then DeleteSnapshot for every ebs_block_device snapshot,
    any error failing the destroy, then waitImageDeleted)."""
    instance = launch_running(ec2, undo, tracker, image_id, instance_type)
    name = f"conf-{run_id}-{unique('tf-ami-from')}"

    made_id = ec2.create_image(Description="", InstanceId=instance["InstanceId"], Name=name, NoReboot=False,
                               TagSpecifications=tag_spec("image", TAGS_BEFORE))["ImageId"]
    storage.image(made_id)
    state_change(lambda: status_image(ec2, made_id), pending=["pending"], target=["available"], what="waitImageAvailable")

    img = refresh_image(ec2, made_id)
    snapshots = [m["Ebs"]["SnapshotId"] for m in img.get("BlockDeviceMappings") or []
                 if (m.get("Ebs") or {}).get("SnapshotId")]
    for s in snapshots:
        storage.snapshot(s)
    assert snapshots, f"an image made from an EBS-backed instance lists its snapshots: {img.get('BlockDeviceMappings')}"
    assert_tags(img, TAGS_BEFORE, "aws_ami_from_instance")
    refresh_image(ec2, made_id)

    update_image_description(ec2, made_id, "made from an instance")
    update_tags(ec2, made_id, TAGS_BEFORE, TAGS_AFTER)
    img = refresh_image(ec2, made_id)
    assert img.get("Description") == "made from an instance"
    assert_tags(img, TAGS_AFTER, "aws_ami_from_instance after update")

    if tolerate(ec2.deregister_image, ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"), ImageId=made_id) is not None:
        for s in snapshots:
            ec2.delete_snapshot(SnapshotId=s)
        wait_image_deleted(ec2, made_id)
    assert find_image(ec2, made_id) is None
    for s in snapshots:
        gone = describe_or_none(ec2.describe_snapshots, ("InvalidSnapshot.NotFound",), SnapshotIds=[s])
        assert gone is None or not gone["Snapshots"], f"snapshot {s} survived DeleteSnapshot"


# --------------------------------------------------------------------------------------------
# Data sources


def test_data_aws_ami(ec2, image):
    """data "aws_ami" { most_recent = true, owners = [<owner>], filter { name = "name" } }.
    Written from ec2_ami_data_source.go dataSourceAMIRead (DescribeImages with
    IncludeDeprecated false, Owners, Filters; paginated; sorted by CreationDate parsed as
    RFC 3339 for most_recent) and find.go findImages."""
    images = pages(ec2.describe_images, "Images", ("InvalidAMIID.NotFound",), IncludeDeprecated=False,
                   Owners=[image["OwnerId"]], Filters=[{"Name": "name", "Values": [image["Name"]]}])
    assert images, "data.aws_ami: no image matched (the data source fails)"
    for img in images:
        try:
            time.strptime(img.get("CreationDate", "")[:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            pytest.fail(f"CreationDate {img.get('CreationDate')!r} is not RFC 3339: most_recent cannot order images")
    newest = sorted(images, key=lambda i: i["CreationDate"], reverse=True)[0]
    assert newest["ImageId"] == image["ImageId"], newest
    for member in ("Architecture", "RootDeviceName", "RootDeviceType", "State", "VirtualizationType"):
        assert newest.get(member), f"data.aws_ami reads {member}: {newest}"


def test_data_aws_availability_zones(ec2, zones):
    """data "aws_availability_zones" { state = "available" }. Written from
    ec2_availability_zones_data_source.go dataSourceAvailabilityZonesRead (DescribeAvailabilityZones
    with a state filter, then names, zone_ids and group_names from ZoneName, ZoneId, GroupName)."""
    azs = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]
    names = [z.get("ZoneName") for z in azs]
    assert sorted(names) == sorted(zones), names
    for z in azs:
        assert z.get("ZoneId") and z.get("GroupName"), f"zone_ids/group_names come from ZoneId/GroupName: {z}"


def test_data_aws_vpc(ec2, undo):
    """data "aws_vpc" { default = true } and { id = ..., tags = { Name = ... } }. Written from
    vpc_data_source.go dataSourceVPCRead (DescribeVpcs with the filter `isDefault`, or VpcIds plus
    tag filters; findVPC asserts one; findVPCAttribute x3, errors failing the read;
    findVPCMainRouteTable, a WARN only; CidrBlockAssociationSet[].CidrBlockState.State read
    without a nil check)."""
    def read(**params):
        vpc = single(pages(ec2.describe_vpcs, "Vpcs", ("InvalidVpcID.NotFound",), **params), "data.aws_vpc DescribeVpcs")
        assert vpc is not None, f"data.aws_vpc {params}: no VPC (the data source fails)"
        for attribute in VPC_ATTRIBUTE_MEMBERS:
            assert find_vpc_attribute(ec2, vpc["VpcId"], attribute) is not None
        main = single(pages(ec2.describe_route_tables, "RouteTables", ("InvalidRouteTableID.NotFound",),
                            Filters=[{"Name": "association.main", "Values": ["true"]},
                                     {"Name": "vpc-id", "Values": [vpc["VpcId"]]}]), "main route table")
        assert main is not None, "main_route_table_id stays empty"
        for assoc in vpc.get("CidrBlockAssociationSet") or []:
            assert "State" in (assoc.get("CidrBlockState") or {}), f"CidrBlockState.State is read without a nil check: {assoc}"
        return vpc

    default = read(Filters=[{"Name": "isDefault", "Values": ["true"]}])
    assert default.get("IsDefault") is True, default

    name = unique("tf-data-vpc")
    vpc_id = ec2.create_vpc(CidrBlock="10.71.0.0/16", TagSpecifications=tag_spec("vpc", {"Name": name}))["Vpc"]["VpcId"]
    undo.push(lambda: ec2.delete_vpc(VpcId=vpc_id))
    vpc = read(VpcIds=[vpc_id], Filters=[{"Name": "tag:Name", "Values": [name]}])
    assert vpc["VpcId"] == vpc_id and vpc["CidrBlock"] == "10.71.0.0/16", vpc


def test_data_aws_subnets(ec2, undo, zones):
    """data "aws_subnets" { filter { name = "vpc-id" }, tags = { Tier = "private" } }. Written from
    vpc_subnets_data_source.go dataSourceSubnetsRead (DescribeSubnets with the custom filters and
    the tag filters, paginated; ids of every match) and find.go findSubnets."""
    vpc_id = make_vpc(ec2, undo, "10.72.0.0/16")
    private = make_subnet(ec2, undo, vpc_id, "10.72.1.0/24", zones[0], {"Tier": "private"})
    public = make_subnet(ec2, undo, vpc_id, "10.72.2.0/24", zones[-1], {"Tier": "public"})
    found = pages(ec2.describe_subnets, "Subnets", ("InvalidSubnetID.NotFound",),
                  Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "tag:Tier", "Values": ["private"]}])
    assert [s["SubnetId"] for s in found] == [private], found
    everything = pages(ec2.describe_subnets, "Subnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    assert sorted(s["SubnetId"] for s in everything) == sorted([private, public]), everything
