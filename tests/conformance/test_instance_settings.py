"""Instance settings Terraform's aws_instance reads and writes: credit specifications of
burstable types, stop protection, the source/destination check, EBS optimisation, detailed
monitoring, and type and user-data changes on a stopped instance."""

import base64

import pytest

from support import expect_error, instance_ids

UNKNOWN = "i-0123456789abcdef0"


def _credits(ec2, iid):
    specs = ec2.describe_instance_credit_specifications(InstanceIds=[iid])["InstanceCreditSpecifications"]
    assert [s["InstanceId"] for s in specs] == [iid]
    return specs[0]["CpuCredits"]


def test_credit_specification_defaults_and_changes(ec2, launch):
    t3 = instance_ids(launch(InstanceType="t3.nano"))[0]
    t2 = instance_ids(launch(InstanceType="t2.micro"))[0]
    assert _credits(ec2, t3) == "unlimited"
    assert _credits(ec2, t2) == "standard"
    out = ec2.modify_instance_credit_specification(
        InstanceCreditSpecifications=[{"InstanceId": t3, "CpuCredits": "standard"},
                                      {"InstanceId": UNKNOWN, "CpuCredits": "standard"}])
    assert [s["InstanceId"] for s in out["SuccessfulInstanceCreditSpecifications"]] == [t3]
    failed = out["UnsuccessfulInstanceCreditSpecifications"]
    assert [(f["InstanceId"], f["Error"]["Code"]) for f in failed] == [(UNKNOWN, "InvalidInstanceID.NotFound")]
    assert _credits(ec2, t3) == "standard"
    with expect_error("InvalidParameterValue"):
        ec2.modify_instance_credit_specification(InstanceCreditSpecifications=[{"InstanceId": t3, "CpuCredits": "turbo"}])
    with expect_error("DryRunOperation", 412):
        ec2.modify_instance_credit_specification(
            InstanceCreditSpecifications=[{"InstanceId": t3, "CpuCredits": "unlimited"}], DryRun=True)
    assert _credits(ec2, t3) == "standard"


def test_credit_specification_at_launch_and_errors(ec2, launch):
    iid = instance_ids(launch(InstanceType="t3.nano", CreditSpecification={"CpuCredits": "standard"}))[0]
    assert _credits(ec2, iid) == "standard"
    with expect_error("InvalidParameterCombination"):
        launch(InstanceType="m5.large", CreditSpecification={"CpuCredits": "unlimited"})
    with expect_error("InvalidInstanceID.NotFound") as err:
        ec2.describe_instance_credit_specifications(InstanceIds=[UNKNOWN, "i-0123456789abcdef1"])
    assert UNKNOWN in str(err.value) and "i-0123456789abcdef1" in str(err.value)
    with expect_error("InvalidInstanceID.Malformed"):
        ec2.describe_instance_credit_specifications(InstanceIds=["i-xyz"])
    with expect_error("DryRunOperation", 412):
        ec2.describe_instance_credit_specifications(DryRun=True)
    by_filter = ec2.describe_instance_credit_specifications(Filters=[{"Name": "instance-id", "Values": [iid]}])
    assert [s["InstanceId"] for s in by_filter["InstanceCreditSpecifications"]] == [iid]


def test_credit_specifications_paginate(ec2, launch):
    ids = set(instance_ids(launch(InstanceType="t3.nano", MinCount=6)))
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = ec2.describe_instance_credit_specifications(MaxResults=5, **kw)
        assert len(page["InstanceCreditSpecifications"]) <= 5
        seen += [s["InstanceId"] for s in page["InstanceCreditSpecifications"]]
        token = page.get("NextToken")
        if not token:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))


def test_stop_protection(ec2, launch, wait):
    iid = instance_ids(launch(DisableApiStop=True))[0]
    wait("instance_running", [iid])
    attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiStop")
    assert attr["DisableApiStop"]["Value"] is True
    with expect_error("OperationNotPermitted"):
        ec2.stop_instances(InstanceIds=[iid])
    ec2.modify_instance_attribute(InstanceId=iid, DisableApiStop={"Value": False})
    assert ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiStop")["DisableApiStop"]["Value"] is False
    ec2.stop_instances(InstanceIds=[iid])
    wait("instance_stopped", [iid])


def test_source_dest_check_and_ebs_optimized(ec2, launch):
    iid = instance_ids(launch())[0]
    ec2.modify_instance_attribute(InstanceId=iid, SourceDestCheck={"Value": False})
    assert ec2.describe_instance_attribute(InstanceId=iid, Attribute="sourceDestCheck")["SourceDestCheck"]["Value"] is False
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["SourceDestCheck"] is False
    assert inst["NetworkInterfaces"][0]["SourceDestCheck"] is False
    ec2.modify_instance_attribute(InstanceId=iid, EbsOptimized={"Value": True})
    assert ec2.describe_instance_attribute(InstanceId=iid, Attribute="ebsOptimized")["EbsOptimized"]["Value"] is True
    with expect_error("InvalidParameterCombination"):
        ec2.modify_instance_attribute(InstanceId=iid, SourceDestCheck={"Value": True}, EbsOptimized={"Value": False})
    with expect_error("UnsupportedOperation"):
        ec2.modify_instance_attribute(InstanceId=iid, Kernel={"Value": "aki-12345678"})
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.modify_instance_attribute(InstanceId=UNKNOWN, SourceDestCheck={"Value": True})


def test_type_and_user_data_change_when_stopped(ec2, launch, wait, other_instance_type):
    iid = instance_ids(launch())[0]
    wait("instance_running", [iid])
    with expect_error("IncorrectInstanceState"):
        ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": other_instance_type})
    ec2.stop_instances(InstanceIds=[iid])
    wait("instance_stopped", [iid])
    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": other_instance_type})
    ec2.modify_instance_attribute(InstanceId=iid, UserData={"Value": b"#!/bin/sh\necho new\n"})
    assert ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceType")["InstanceType"]["Value"] == other_instance_type
    ud = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(ud) == b"#!/bin/sh\necho new\n"


def test_monitoring(ec2, launch):
    iid = instance_ids(launch(Monitoring={"Enabled": True}))[0]
    state = lambda: ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["Monitoring"]["State"]
    assert state() == "enabled"
    out = ec2.unmonitor_instances(InstanceIds=[iid])["InstanceMonitorings"]
    assert out == [{"InstanceId": iid, "Monitoring": {"State": "disabled"}}]
    assert state() == "disabled"
    assert ec2.monitor_instances(InstanceIds=[iid])["InstanceMonitorings"][0]["Monitoring"]["State"] == "enabled"
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.monitor_instances(InstanceIds=[UNKNOWN])
    with expect_error("DryRunOperation", 412):
        ec2.unmonitor_instances(InstanceIds=[iid], DryRun=True)
    assert state() == "enabled"
