"""DescribeInstanceAttribute / ModifyInstanceAttribute: instanceType (only when stopped),
userData, disableApiTermination and instanceInitiatedShutdownBehavior."""

import base64

import pytest
from botocore.exceptions import ClientError

from support import expect_error, instance_ids, instances_of


def attribute(ec2, instance_id, name, member):
    response = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)
    assert response["InstanceId"] == instance_id
    return response[member].get("Value")


def test_defaults(ec2, launch, instance_type):
    i = instance_ids(launch())[0]
    assert attribute(ec2, i, "instanceType", "InstanceType") == instance_type
    assert attribute(ec2, i, "disableApiTermination", "DisableApiTermination") is False
    assert attribute(ec2, i, "instanceInitiatedShutdownBehavior", "InstanceInitiatedShutdownBehavior") == "stop"
    # No user data: the member is there, without a value.
    response = ec2.describe_instance_attribute(InstanceId=i, Attribute="userData")
    assert "UserData" in response
    assert response["UserData"].get("Value") in (None, "")


def test_shutdown_behavior_given_at_launch_is_reported(ec2, launch):
    i = instance_ids(launch(InstanceInitiatedShutdownBehavior="terminate"))[0]
    assert attribute(ec2, i, "instanceInitiatedShutdownBehavior", "InstanceInitiatedShutdownBehavior") == "terminate"
    ec2.modify_instance_attribute(InstanceId=i, InstanceInitiatedShutdownBehavior={"Value": "stop"})
    assert attribute(ec2, i, "instanceInitiatedShutdownBehavior", "InstanceInitiatedShutdownBehavior") == "stop"


def test_stop_instances_stops_even_with_terminate_behavior(ec2, launch, wait):
    # The behaviour applies to a shutdown from inside the guest, not to StopInstances.
    i = instance_ids(launch(InstanceInitiatedShutdownBehavior="terminate"))[0]
    wait("instance_running", [i])
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])


def test_bad_shutdown_behavior(ec2, launch):
    with expect_error("InvalidParameterValue"):
        launch(InstanceInitiatedShutdownBehavior="explode")


def test_termination_protection(ec2, launch, wait):
    i = instance_ids(launch(DisableApiTermination=True))[0]
    assert attribute(ec2, i, "disableApiTermination", "DisableApiTermination") is True
    wait("instance_running", [i])
    with expect_error("OperationNotPermitted"):
        ec2.terminate_instances(InstanceIds=[i])
    assert instances_of(ec2.describe_instances(InstanceIds=[i]))[0]["State"]["Name"] == "running"

    ec2.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": False})
    assert attribute(ec2, i, "disableApiTermination", "DisableApiTermination") is False
    ec2.terminate_instances(InstanceIds=[i])
    wait("instance_terminated", [i])


def test_termination_protection_set_later(ec2, launch):
    i = instance_ids(launch())[0]
    ec2.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": True})
    with expect_error("OperationNotPermitted"):
        ec2.terminate_instances(InstanceIds=[i])
    ec2.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": False})


def test_resize_when_stopped_then_start(ec2, launch, wait, instance_type, other_instance_type):
    i = instance_ids(launch(InstanceType=instance_type))[0]
    wait("instance_running", [i])
    with expect_error("IncorrectInstanceState"):
        ec2.modify_instance_attribute(InstanceId=i, InstanceType={"Value": other_instance_type})
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])
    ec2.modify_instance_attribute(InstanceId=i, InstanceType={"Value": other_instance_type})
    assert attribute(ec2, i, "instanceType", "InstanceType") == other_instance_type
    ec2.start_instances(InstanceIds=[i])
    wait("instance_running", [i])
    described = instances_of(ec2.describe_instances(InstanceIds=[i]))[0]
    assert described["InstanceType"] == other_instance_type
    assert described["State"]["Name"] == "running"


def test_resize_with_attribute_and_value_form(ec2, launch, wait, other_instance_type):
    # The older form: Attribute=instanceType&Value=... (what `aws ec2 modify-instance-attribute
    # --attribute instanceType --value ...` sends).
    i = instance_ids(launch())[0]
    wait("instance_running", [i])
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])
    ec2.modify_instance_attribute(InstanceId=i, Attribute="instanceType", Value=other_instance_type)
    assert attribute(ec2, i, "instanceType", "InstanceType") == other_instance_type


def test_resize_to_an_unknown_type(ec2, launch, wait):
    i = instance_ids(launch())[0]
    wait("instance_running", [i])
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])
    with pytest.raises(ClientError) as info:
        ec2.modify_instance_attribute(InstanceId=i, InstanceType={"Value": "bogus.nano"})
    assert info.value.response["Error"]["Code"] in ("InvalidInstanceAttributeValue", "InvalidParameterValue")


def test_user_data_round_trip(ec2, launch, wait):
    script = "#!/bin/sh\necho 'hello from user-data' > /tmp/ran\n"
    # boto3 base64-encodes UserData for RunInstances; the attribute comes back base64-encoded.
    i = instance_ids(launch(UserData=script))[0]
    value = attribute(ec2, i, "userData", "UserData")
    assert base64.b64decode(value).decode() == script


def test_user_data_binary_round_trip(ec2, launch):
    blob = bytes(range(256))
    i = instance_ids(launch(UserData=blob))[0]
    assert base64.b64decode(attribute(ec2, i, "userData", "UserData")) == blob


def test_modify_user_data_when_stopped(ec2, launch, wait):
    i = instance_ids(launch(UserData="first"))[0]
    wait("instance_running", [i])
    with expect_error("IncorrectInstanceState"):
        ec2.modify_instance_attribute(InstanceId=i, UserData={"Value": b"second"})
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])
    # The Blob member is base64-encoded by botocore on the wire.
    ec2.modify_instance_attribute(InstanceId=i, UserData={"Value": b"second"})
    assert base64.b64decode(attribute(ec2, i, "userData", "UserData")) == b"second"


def test_unknown_attribute(ec2_unvalidated, launch):
    i = instance_ids(launch())[0]
    with expect_error("InvalidParameterValue"):
        ec2_unvalidated.describe_instance_attribute(InstanceId=i, Attribute="favouriteColour")
