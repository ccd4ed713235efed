"""Instances: lifecycle through waiters, reservations, counts, placement, DescribeInstances
filters and pagination, DescribeInstanceStatus, console output."""

import datetime
import uuid

import pytest

from support import (
    expect_error,
    instance_ids,
    instances_of,
    run_tag,
    terminate_all,
    unique,
    wait_until,
    waiter_config,
)


def describe_one(ec2, instance_id):
    found = instances_of(ec2.describe_instances(InstanceIds=[instance_id]))
    assert len(found) == 1
    return found[0]


def state_of(ec2, instance_id):
    return describe_one(ec2, instance_id)["State"]["Name"]


def only_change(changes, instance_id):
    assert [c["InstanceId"] for c in changes] == [instance_id]
    c = changes[0]
    return c["PreviousState"]["Name"], c["CurrentState"]["Name"]


# -- lifecycle ---------------------------------------------------------------------------------

def test_lifecycle_with_waiters(ec2, launch, wait):
    reservation = launch()
    inst = reservation["Instances"][0]
    i = inst["InstanceId"]
    assert inst["State"] == {"Code": 0, "Name": "pending"}

    wait("instance_running", [i])
    assert describe_one(ec2, i)["State"] == {"Code": 16, "Name": "running"}

    prev, cur = only_change(ec2.stop_instances(InstanceIds=[i])["StoppingInstances"], i)
    assert prev == "running" and cur in ("stopping", "stopped")
    wait("instance_stopped", [i])
    stopped = describe_one(ec2, i)
    assert stopped["State"] == {"Code": 80, "Name": "stopped"}
    assert stopped["StateTransitionReason"].startswith("User initiated"), stopped["StateTransitionReason"]
    assert stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown"

    prev, cur = only_change(ec2.start_instances(InstanceIds=[i])["StartingInstances"], i)
    assert prev == "stopped" and cur in ("pending", "running")
    wait("instance_running", [i])

    ec2.reboot_instances(InstanceIds=[i])
    wait_until(lambda: state_of(ec2, i) == "running", "running after reboot")

    prev, cur = only_change(ec2.terminate_instances(InstanceIds=[i])["TerminatingInstances"], i)
    assert prev == "running" and cur in ("shutting-down", "terminated")
    wait("instance_terminated", [i])
    # A terminated instance stays visible for a while, as on EC2.
    assert describe_one(ec2, i)["State"] == {"Code": 48, "Name": "terminated"}
    # Terminating again is harmless and says so.
    assert only_change(ec2.terminate_instances(InstanceIds=[i])["TerminatingInstances"], i) == (
        "terminated", "terminated")


def test_stop_of_a_stopped_instance_reports_stopped(ec2, launch, wait):
    i = launch()["Instances"][0]["InstanceId"]
    wait("instance_running", [i])
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])
    assert only_change(ec2.stop_instances(InstanceIds=[i])["StoppingInstances"], i) == ("stopped", "stopped")


def test_forced_stop(ec2, launch, wait):
    i = launch()["Instances"][0]["InstanceId"]
    wait("instance_running", [i])
    prev, cur = only_change(ec2.stop_instances(InstanceIds=[i], Force=True)["StoppingInstances"], i)
    assert prev == "running" and cur in ("stopping", "stopped")
    wait("instance_stopped", [i])


def test_terminate_a_stopped_instance(ec2, launch, wait):
    i = launch()["Instances"][0]["InstanceId"]
    wait("instance_running", [i])
    ec2.stop_instances(InstanceIds=[i])
    wait("instance_stopped", [i])
    prev, _ = only_change(ec2.terminate_instances(InstanceIds=[i])["TerminatingInstances"], i)
    assert prev == "stopped"
    wait("instance_terminated", [i])


# -- reservations, counts, placement ----------------------------------------------------------

def test_one_run_is_one_reservation(ec2, launch):
    reservation = launch(MinCount=3)
    ids = instance_ids(reservation)
    assert len(ids) == 3 and len(set(ids)) == 3
    assert sorted(i["AmiLaunchIndex"] for i in reservation["Instances"]) == [0, 1, 2]
    described = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    assert [r["ReservationId"] for r in described] == [reservation["ReservationId"]]
    assert sorted(i["InstanceId"] for i in described[0]["Instances"]) == sorted(ids)


def test_two_runs_are_two_reservations(ec2, launch):
    a, b = launch(), launch()
    assert a["ReservationId"] != b["ReservationId"]
    described = ec2.describe_instances(InstanceIds=instance_ids(a) + instance_ids(b))["Reservations"]
    assert sorted(r["ReservationId"] for r in described) == sorted([a["ReservationId"], b["ReservationId"]])


def test_max_count_is_launched_when_capacity_allows(launch):
    reservation = launch(MinCount=1, MaxCount=3)
    assert len(reservation["Instances"]) == 3


def test_launch_parameters_are_reported(ec2, launch, image_id, other_instance_type, key_name):
    name = key_name("launch")
    ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    inst = launch(InstanceType=other_instance_type, KeyName=name)["Instances"][0]
    for view in (inst, describe_one(ec2, inst["InstanceId"])):
        assert view["ImageId"] == image_id
        assert view["InstanceType"] == other_instance_type
        assert view["KeyName"] == name
        age = datetime.datetime.now(datetime.timezone.utc) - view["LaunchTime"]
        assert abs(age.total_seconds()) < 600, view["LaunchTime"]


def test_placement_in_a_chosen_zone(ec2, launch, zones):
    zone = zones[-1]
    inst = launch(Placement={"AvailabilityZone": zone})["Instances"][0]
    assert inst["Placement"]["AvailabilityZone"] == zone
    assert describe_one(ec2, inst["InstanceId"])["Placement"]["AvailabilityZone"] == zone


def test_placement_in_an_unknown_zone(ec2, image_id, instance_type):
    with expect_error("InvalidParameterValue"):
        ec2.run_instances(
            ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1,
            Placement={"AvailabilityZone": "nowhere-9z"},
        )


def test_tag_specifications_tag_the_instances(ec2, launch, run_id):
    tags = [{"Key": "Name", "Value": unique("web")}, {"Key": "empty", "Value": ""}]
    reservation = launch(MinCount=2, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    expected = sorted((t["Key"], t["Value"]) for t in tags + [run_tag()])
    for inst in reservation["Instances"]:
        assert sorted((t["Key"], t["Value"]) for t in inst["Tags"]) == expected
    for inst in instances_of(ec2.describe_instances(InstanceIds=instance_ids(reservation))):
        assert sorted((t["Key"], t["Value"]) for t in inst["Tags"]) == expected


# -- DescribeInstances filters ----------------------------------------------------------------

@pytest.fixture(scope="module")
def fleet(ec2, image_id, instance_type, other_instance_type, zones, run_id):
    """Three instances that differ in every filtered attribute:
    alpha (type 1, first zone, key, Name=alpha, role=web), beta (type 2, last zone, Name=beta,
    role=db), gamma (type 1, first zone, Name=gamma, stopped)."""
    fleet_tag = unique("fleet")
    key = f"conf-{run_id}-fleet-{uuid.uuid4().hex[:8]}"
    ec2.create_key_pair(KeyName=key, KeyType="ed25519")
    made = {}

    def run(name, itype, zone, extra_tags=(), **kw):
        tags = [{"Key": "Name", "Value": name}, {"Key": "fleet", "Value": fleet_tag}, run_tag(), *extra_tags]
        r = ec2.run_instances(
            ImageId=image_id, InstanceType=itype, MinCount=1, MaxCount=1,
            Placement={"AvailabilityZone": zone},
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}], **kw,
        )
        made[name] = r["Instances"][0]["InstanceId"]

    try:
        run("alpha", instance_type, zones[0], [{"Key": "role", "Value": "web"}], KeyName=key)
        run("beta", other_instance_type, zones[-1], [{"Key": "role", "Value": "db"}])
        run("gamma", instance_type, zones[0])
        ec2.get_waiter("instance_running").wait(InstanceIds=list(made.values()), WaiterConfig=waiter_config())
        ec2.stop_instances(InstanceIds=[made["gamma"]])
        ec2.get_waiter("instance_stopped").wait(InstanceIds=[made["gamma"]], WaiterConfig=waiter_config())
        yield {"ids": made, "tag": fleet_tag, "key": key, "zones": (zones[0], zones[-1]),
               "types": (instance_type, other_instance_type)}
    finally:
        terminate_all(ec2, made.values())
        ec2.delete_key_pair(KeyName=key)


def names_matching(ec2, fleet, *filters):
    response = ec2.describe_instances(Filters=[{"Name": "tag:fleet", "Values": [fleet["tag"]]}, *filters])
    by_id = {v: k for k, v in fleet["ids"].items()}
    return sorted(by_id[i["InstanceId"]] for i in instances_of(response))


def test_filter_everything_in_the_fleet(ec2, fleet):
    assert names_matching(ec2, fleet) == ["alpha", "beta", "gamma"]


def test_filter_instance_id(ec2, fleet):
    f = {"Name": "instance-id", "Values": [fleet["ids"]["alpha"], fleet["ids"]["beta"]]}
    assert names_matching(ec2, fleet, f) == ["alpha", "beta"]


def test_filter_instance_state_name(ec2, fleet):
    assert names_matching(ec2, fleet, {"Name": "instance-state-name", "Values": ["running"]}) == ["alpha", "beta"]
    assert names_matching(ec2, fleet, {"Name": "instance-state-name", "Values": ["stopped"]}) == ["gamma"]
    assert names_matching(ec2, fleet, {"Name": "instance-state-name", "Values": ["stopped", "running"]}) == [
        "alpha", "beta", "gamma"]


def test_filter_instance_state_code(ec2, fleet):
    assert names_matching(ec2, fleet, {"Name": "instance-state-code", "Values": ["80"]}) == ["gamma"]


def test_filter_instance_type(ec2, fleet):
    t1, t2 = fleet["types"]
    assert names_matching(ec2, fleet, {"Name": "instance-type", "Values": [t2]}) == ["beta"]
    assert names_matching(ec2, fleet, {"Name": "instance-type", "Values": [t1]}) == ["alpha", "gamma"]


def test_filter_image_id(ec2, fleet, image_id):
    assert names_matching(ec2, fleet, {"Name": "image-id", "Values": [image_id]}) == ["alpha", "beta", "gamma"]
    assert names_matching(ec2, fleet, {"Name": "image-id", "Values": ["ami-0123456789abcdef0"]}) == []


def test_filter_key_name(ec2, fleet):
    assert names_matching(ec2, fleet, {"Name": "key-name", "Values": [fleet["key"]]}) == ["alpha"]


def test_filter_availability_zone(ec2, fleet):
    first, last = fleet["zones"]
    if first == last:
        pytest.skip("the region has one zone")
    assert names_matching(ec2, fleet, {"Name": "availability-zone", "Values": [last]}) == ["beta"]
    assert names_matching(ec2, fleet, {"Name": "availability-zone", "Values": [first]}) == ["alpha", "gamma"]


def test_filter_tag_key_value(ec2, fleet):
    assert names_matching(ec2, fleet, {"Name": "tag:role", "Values": ["db"]}) == ["beta"]
    assert names_matching(ec2, fleet, {"Name": "tag:role", "Values": ["web", "db"]}) == ["alpha", "beta"]
    assert names_matching(ec2, fleet, {"Name": "tag:Name", "Values": ["?amma"]}) == ["gamma"]
    assert names_matching(ec2, fleet, {"Name": "tag:Name", "Values": ["*a*"]}) == ["alpha", "beta", "gamma"]
    assert names_matching(ec2, fleet, {"Name": "tag:role", "Values": ["WEB"]}) == []  # values are case-sensitive


def test_filter_tag_key_and_tag_value(ec2, fleet):
    assert names_matching(ec2, fleet, {"Name": "tag-key", "Values": ["role"]}) == ["alpha", "beta"]
    assert names_matching(ec2, fleet, {"Name": "tag-value", "Values": ["web"]}) == ["alpha"]
    assert names_matching(ec2, fleet, {"Name": "tag-value", "Values": ["gam*"]}) == ["gamma"]


def test_filters_and_across_names_or_within_values(ec2, fleet):
    t1, _ = fleet["types"]
    assert names_matching(
        ec2, fleet,
        {"Name": "instance-type", "Values": [t1]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ) == ["alpha"]


def test_filters_apply_with_instance_ids(ec2, fleet):
    ids = list(fleet["ids"].values())
    response = ec2.describe_instances(InstanceIds=ids, Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])
    assert [i["InstanceId"] for i in instances_of(response)] == [fleet["ids"]["gamma"]]


# -- pagination --------------------------------------------------------------------------------

def test_paginating_twelve_instances_by_five_yields_each_once(ec2, launch):
    marker = unique("page")
    made = []
    for _ in range(4):
        r = launch(MinCount=3, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "page", "Value": marker}]}])
        made += instance_ids(r)
    assert len(made) == 12
    pages = list(ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:page", "Values": [marker]}], PaginationConfig={"PageSize": 5}))
    per_page = [sum(len(r["Instances"]) for r in p["Reservations"]) for p in pages]
    assert all(n <= 5 for n in per_page), per_page
    assert len([n for n in per_page if n]) >= 3, per_page
    seen = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
    assert sorted(seen) == sorted(made), "each instance exactly once"
    # The last page says there is no more.
    assert not pages[-1].get("NextToken")


def test_manual_next_token_walk(ec2, launch):
    marker = unique("walk")
    made = instance_ids(launch(MinCount=6, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "walk", "Value": marker}]}]))
    seen, token, calls = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        page = ec2.describe_instances(Filters=[{"Name": "tag:walk", "Values": [marker]}], MaxResults=5, **kw)
        seen += [i["InstanceId"] for i in instances_of(page)]
        calls += 1
        token = page.get("NextToken")
        if not token:
            break
        assert calls < 10
    assert calls == 2
    assert sorted(seen) == sorted(made)


# -- DescribeInstanceStatus --------------------------------------------------------------------

def test_instance_status_running_and_stopped(ec2, launch, wait):
    up, down = instance_ids(launch(MinCount=2))
    wait("instance_running", [up, down])
    ec2.stop_instances(InstanceIds=[down])
    wait("instance_stopped", [down])

    default = ec2.describe_instance_status(InstanceIds=[up, down])["InstanceStatuses"]
    assert [s["InstanceId"] for s in default] == [up], "only running instances by default"
    assert default[0]["InstanceState"]["Name"] == "running"

    everything = ec2.describe_instance_status(InstanceIds=[up, down], IncludeAllInstances=True)["InstanceStatuses"]
    states = {s["InstanceId"]: s["InstanceState"]["Name"] for s in everything}
    assert states == {up: "running", down: "stopped"}


def test_instance_status_waiter_shape(ec2, launch):
    # instance_status_ok polls DescribeInstanceStatus and reads InstanceStatuses[].InstanceStatus.Status.
    i = instance_ids(launch())[0]
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=[i], WaiterConfig=waiter_config())


# -- console output ---------------------------------------------------------------------------

def test_console_output_decodes(ec2, launch, wait):
    i = instance_ids(launch())[0]
    wait("instance_running", [i])

    def output():
        out = ec2.get_console_output(InstanceId=i)
        assert out["InstanceId"] == i
        return out.get("Output")

    text = wait_until(output, "console output")
    # botocore base64-decodes Output: what arrives is text, not base64.
    assert isinstance(text, str) and text.strip()
    latest = ec2.get_console_output(InstanceId=i, Latest=True)
    assert latest["InstanceId"] == i
    assert isinstance(latest["Timestamp"], datetime.datetime)
    assert isinstance(latest.get("Output", ""), str)
