"""AWS's error codes and HTTP statuses for the mistakes clients make."""

import concurrent.futures
import uuid

import pytest

from support import (
    UNKNOWN_AMI_ID,
    UNKNOWN_INSTANCE_ID,
    UNKNOWN_KEY_PAIR_ID,
    expect_error,
    instance_ids,
    instances_of,
    raw_request,
)


def test_error_envelope_is_ec2s(endpoint):
    resp = raw_request(endpoint, {"Action": "DescribeInstances", "InstanceId.1": "i-123"})
    assert resp.status == 400
    root = resp.xml()
    assert root.tag == "Response"
    assert root.find("./Errors/Error/Code").text == "InvalidInstanceID.Malformed"
    assert root.find("./Errors/Error/Message").text
    assert root.find("./RequestID").text


# -- ids ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["i-123", "i-xyz12345", "instance-0123456789abcdef0", "i-"])
def test_malformed_instance_id(ec2, bad_id):
    with expect_error("InvalidInstanceID.Malformed"):
        ec2.describe_instances(InstanceIds=[bad_id])


def test_unknown_instance_id_everywhere(ec2):
    calls = [
        lambda: ec2.describe_instances(InstanceIds=[UNKNOWN_INSTANCE_ID]),
        lambda: ec2.describe_instance_status(InstanceIds=[UNKNOWN_INSTANCE_ID]),
        lambda: ec2.start_instances(InstanceIds=[UNKNOWN_INSTANCE_ID]),
        lambda: ec2.stop_instances(InstanceIds=[UNKNOWN_INSTANCE_ID]),
        lambda: ec2.reboot_instances(InstanceIds=[UNKNOWN_INSTANCE_ID]),
        lambda: ec2.terminate_instances(InstanceIds=[UNKNOWN_INSTANCE_ID]),
        lambda: ec2.get_console_output(InstanceId=UNKNOWN_INSTANCE_ID),
        lambda: ec2.describe_instance_attribute(InstanceId=UNKNOWN_INSTANCE_ID, Attribute="instanceType"),
        lambda: ec2.modify_instance_attribute(InstanceId=UNKNOWN_INSTANCE_ID, DisableApiTermination={"Value": False}),
        lambda: ec2.create_tags(Resources=[UNKNOWN_INSTANCE_ID], Tags=[{"Key": "k", "Value": "v"}]),
    ]
    for call in calls:
        with expect_error("InvalidInstanceID.NotFound"):
            call()


def test_one_unknown_id_among_known_ones_fails_the_whole_call(ec2, launch):
    known = launch()["Instances"][0]["InstanceId"]
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.describe_instances(InstanceIds=[known, UNKNOWN_INSTANCE_ID])
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.terminate_instances(InstanceIds=[known, UNKNOWN_INSTANCE_ID])
    state = instances_of(ec2.describe_instances(InstanceIds=[known]))[0]["State"]["Name"]
    assert state in ("pending", "running"), "a refused TerminateInstances must not touch the known instance"


def test_unknown_and_malformed_image_ids(ec2, instance_type):
    with expect_error("InvalidAMIID.NotFound"):
        ec2.describe_images(ImageIds=[UNKNOWN_AMI_ID])
    with expect_error("InvalidAMIID.Malformed"):
        ec2.describe_images(ImageIds=["ami-12"])
    with expect_error("InvalidAMIID.NotFound"):
        ec2.run_instances(ImageId=UNKNOWN_AMI_ID, InstanceType=instance_type, MinCount=1, MaxCount=1)
    with expect_error("InvalidAMIID.Malformed"):
        ec2.run_instances(ImageId="ami-zz", InstanceType=instance_type, MinCount=1, MaxCount=1)


def test_unknown_key_pair(ec2, image_id, instance_type):
    name = f"conf-missing-{uuid.uuid4().hex[:8]}"
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.describe_key_pairs(KeyNames=[name])
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.describe_key_pairs(KeyPairIds=[UNKNOWN_KEY_PAIR_ID])
    with expect_error("InvalidKeyPair.NotFound"):
        ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, KeyName=name)


def test_duplicate_key_name(ec2, key_name):
    name = key_name("dup")
    ec2.create_key_pair(KeyName=name)
    with expect_error("InvalidKeyPair.Duplicate"):
        ec2.create_key_pair(KeyName=name)


# -- parameters --------------------------------------------------------------------------------

def test_missing_parameters(ec2, ec2_unvalidated, image_id, instance_type):
    with expect_error("MissingParameter"):
        ec2_unvalidated.create_key_pair()
    with expect_error("MissingParameter"):
        ec2_unvalidated.run_instances(ImageId=image_id, InstanceType=instance_type)  # no MinCount/MaxCount
    with expect_error("MissingParameter"):
        ec2_unvalidated.create_tags(Tags=[{"Key": "k", "Value": "v"}])
    # ImageId is optional in the model (a launch template may supply it) but required without one.
    with expect_error("MissingParameter"):
        ec2.run_instances(InstanceType=instance_type, MinCount=1, MaxCount=1)


def test_unknown_action(endpoint):
    resp = raw_request(endpoint, {"Action": "DescribeUnicorns"})
    assert resp.status == 400
    assert resp.error_code() == "InvalidAction", resp.body


def test_model_operation_not_served_is_unsupported(ec2):
    # In botocore's model, not (yet) served by Corral: AWS's code for an operation an endpoint
    # does not support, with a message naming it (the Terraform provider tolerates this code).
    with expect_error("UnsupportedOperation") as err:
        ec2.describe_fleets()
    assert "DescribeFleets" in str(err.value)


def test_dry_run_answers_dry_run_operation_with_412(ec2, image_id, instance_type, run_id):
    with expect_error("DryRunOperation", 412):
        ec2.run_instances(
            ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, DryRun=True,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "dry", "Value": run_id}]}],
        )
    with expect_error("DryRunOperation", 412):
        ec2.describe_instances(DryRun=True)
    # Nothing was launched.
    made = ec2.describe_instances(Filters=[{"Name": "tag:dry", "Values": [run_id]}])
    assert instances_of(made) == []


def test_dry_run_still_validates(ec2, instance_type):
    with expect_error("InvalidAMIID.NotFound"):
        ec2.run_instances(ImageId=UNKNOWN_AMI_ID, InstanceType=instance_type, MinCount=1, MaxCount=1, DryRun=True)


def test_max_results_below_the_smallest_page(ec2_unvalidated):
    with expect_error("InvalidParameterValue"):
        ec2_unvalidated.describe_instances(MaxResults=4)


def test_max_results_above_a_range_the_model_declares(ec2):
    # DescribeVpcs declares 5..1000 in the model: AWS refuses values outside it.
    with expect_error("InvalidParameterValue"):
        ec2.describe_vpcs(MaxResults=1001)


@pytest.mark.parametrize("call", ["describe_instances", "describe_volumes", "describe_snapshots", "describe_tags",
                                  "describe_images"])
def test_max_results_above_the_largest_page_is_clamped(ec2, call):
    # Calls without a declared range return their largest page instead (the aws CLI v1 sends
    # MaxResults=1000 to describe-volumes, whose pages hold 500).
    getattr(ec2, call)(MaxResults=5000)


def test_instance_ids_with_max_results(ec2):
    with expect_error("InvalidParameterCombination"):
        ec2.describe_instances(InstanceIds=[UNKNOWN_INSTANCE_ID], MaxResults=5)


def test_garbage_next_token(ec2):
    with expect_error("InvalidPaginationToken"):
        ec2.describe_instances(MaxResults=5, NextToken="this-is-not-a-token")


def test_unknown_filter_name(ec2):
    with expect_error("InvalidParameterValue"):
        ec2.describe_instances(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


def test_bad_instance_type(ec2, image_id):
    with expect_error("InvalidParameterValue"):
        ec2.run_instances(ImageId=image_id, InstanceType="bogus.nano", MinCount=1, MaxCount=1)


def test_bad_counts(ec2, image_id, instance_type):
    with expect_error("InvalidParameterValue"):
        ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=3, MaxCount=2)
    with expect_error("InvalidParameterValue"):
        ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=0, MaxCount=1)


def test_bad_user_data_base64(endpoint, image_id, instance_type):
    resp = raw_request(endpoint, {
        "Action": "RunInstances", "ImageId": image_id, "InstanceType": instance_type,
        "MinCount": "1", "MaxCount": "1", "UserData": "!!! not base64 $$$",
    })
    assert resp.status == 400
    assert resp.error_code() == "InvalidUserData.Malformed", resp.body


def test_user_data_over_16_kib(ec2, image_id, instance_type):
    # The limit is on the raw bytes, before base64: exactly 16384 is fine.
    with expect_error("DryRunOperation", 412):
        ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1,
                          UserData="x" * 16384, DryRun=True)
    with expect_error("InvalidParameterValue"):
        ec2.run_instances(ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1,
                          UserData="x" * 16385, DryRun=True)


def test_reserved_tag_prefix(ec2, launch):
    instance = launch()["Instances"][0]["InstanceId"]
    with expect_error("InvalidParameterValue"):
        ec2.create_tags(Resources=[instance], Tags=[{"Key": "aws:owner", "Value": "me"}])


# -- idempotency -------------------------------------------------------------------------------

def test_same_client_token_same_params_returns_the_same_reservation(ec2, launch, run_id):
    token = f"conf-{uuid.uuid4()}"
    first = launch(ClientToken=token, MinCount=2)
    second = launch(ClientToken=token, MinCount=2)
    assert second["ReservationId"] == first["ReservationId"]
    assert sorted(i["InstanceId"] for i in second["Instances"]) == sorted(i["InstanceId"] for i in first["Instances"])
    assert all(i["ClientToken"] == token for i in first["Instances"])
    # No new instance appeared with that token.
    tagged = ec2.describe_instances(Filters=[{"Name": "tag:conformance-run", "Values": [run_id]}])
    with_token = [i for i in instances_of(tagged) if i.get("ClientToken") == token]
    assert len(with_token) == 2


def test_concurrent_retries_with_one_client_token_launch_once(ec2, launch, run_id):
    # What an SDK's retry after a timeout looks like: the same request, in flight several times.
    token = f"conf-{uuid.uuid4()}"

    def attempt(_):
        return launch(ClientToken=token, MinCount=2)

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert {r["ReservationId"] for r in results} == {results[0]["ReservationId"]}
    assert {tuple(sorted(instance_ids(r))) for r in results} == {tuple(sorted(instance_ids(results[0])))}
    tagged = ec2.describe_instances(Filters=[{"Name": "tag:conformance-run", "Values": [run_id]}])
    assert len([i for i in instances_of(tagged) if i.get("ClientToken") == token]) == 2


def test_reused_client_token_with_other_params_is_a_mismatch(ec2, launch, other_instance_type):
    token = f"conf-{uuid.uuid4()}"
    launch(ClientToken=token)
    with expect_error("IdempotentParameterMismatch"):
        launch(ClientToken=token, InstanceType=other_instance_type)


# -- state -------------------------------------------------------------------------------------

def test_modify_instance_type_while_running_is_incorrect_state(ec2, launch, wait, other_instance_type):
    instance = launch()["Instances"][0]["InstanceId"]
    wait("instance_running", [instance])
    with expect_error("IncorrectInstanceState"):
        ec2.modify_instance_attribute(InstanceId=instance, InstanceType={"Value": other_instance_type})


def test_starting_a_terminated_instance_is_incorrect_state(ec2, launch, wait):
    instance = launch()["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[instance])
    wait("instance_terminated", [instance])
    with expect_error("IncorrectInstanceState"):
        ec2.start_instances(InstanceIds=[instance])
    with expect_error("IncorrectInstanceState"):
        ec2.stop_instances(InstanceIds=[instance])


@pytest.mark.parametrize("call,arg,prefix,code", [
    ("describe_instances", "InstanceIds", "i", "InvalidInstanceID.NotFound"),
    ("describe_vpcs", "VpcIds", "vpc", "InvalidVpcID.NotFound"),
    ("describe_subnets", "SubnetIds", "subnet", "InvalidSubnetID.NotFound"),
    ("describe_security_groups", "GroupIds", "sg", "InvalidGroup.NotFound"),
    ("describe_internet_gateways", "InternetGatewayIds", "igw", "InvalidInternetGatewayID.NotFound"),
    ("describe_route_tables", "RouteTableIds", "rtb", "InvalidRouteTableID.NotFound"),
    ("describe_network_interfaces", "NetworkInterfaceIds", "eni", "InvalidNetworkInterfaceID.NotFound"),
    ("describe_addresses", "AllocationIds", "eipalloc", "InvalidAllocationID.NotFound"),
    ("describe_volumes", "VolumeIds", "vol", "InvalidVolume.NotFound"),
    ("describe_snapshots", "SnapshotIds", "snap", "InvalidSnapshot.NotFound"),
    ("describe_images", "ImageIds", "ami", "InvalidAMIID.NotFound"),
    ("describe_security_group_rules", "SecurityGroupRuleIds", "sgr", "InvalidSecurityGroupRuleId.NotFound"),
])
def test_not_found_names_every_unknown_id(ec2, call, arg, prefix, code):
    ids = [f"{prefix}-0123456789abcdef0", f"{prefix}-0123456789abcdef1"]
    with expect_error(code) as err:
        getattr(ec2, call)(**{arg: ids})
    assert all(i in str(err.value) for i in ids), str(err.value)


@pytest.mark.parametrize("prefix,length", [("vpc", 8), ("vpc", 17)])
def test_both_id_lengths_are_well_formed(ec2, prefix, length):
    with expect_error("InvalidVpcID.NotFound"):
        ec2.describe_vpcs(VpcIds=[f"{prefix}-" + "1" * length])
    with expect_error("InvalidVpcID.Malformed"):
        ec2.describe_vpcs(VpcIds=[f"{prefix}-" + "1" * (length + 1)])


# -- lengths and characters ---------------------------------------------------------------------

def test_descriptions_are_at_most_255_characters_without_control_characters(ec2, new_volume, run_id):
    """EC2 caps descriptions at 255 characters; control characters would break the XML that
    returns them to every client that lists them."""
    volume_id = new_volume(Size=1)["VolumeId"]
    for bad in ["x" * 10_000, "x" * 256, "a\x01b"]:
        with expect_error("InvalidParameterValue"):
            ec2.create_snapshot(VolumeId=volume_id, Description=bad)
        with expect_error("InvalidParameterValue"):
            ec2.create_security_group(GroupName=f"desc-{run_id}-{len(bad)}", Description=bad)
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group_id = ec2.create_security_group(GroupName=f"desc-{run_id}", Description="ok", VpcId=vpc_id)["GroupId"]
    try:
        for bad in ["x" * 256, "tab\x1bescape"]:
            with expect_error("InvalidParameterValue"):
                ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
                    "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": bad}]}])
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "y" * 255}]}])
        rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
        assert any(r.get("Description") == "y" * 255 for r in rules)
    finally:
        ec2.delete_security_group(GroupId=group_id)
