"""Filters a Describe has no line of its own for are answered from the response member they
name (`metadata-options.http-tokens` is MetadataOptions.HttpTokens), so every documented filter
on a member Corral returns works."""

from support import instance_ids


def _ids(resp):
    return {i["InstanceId"] for r in resp["Reservations"] for i in r["Instances"]}


def test_instance_filters_on_rendered_members(ec2, launch, run_id):
    required = instance_ids(launch(MetadataOptions={"HttpTokens": "required"}, Monitoring={"Enabled": True}))[0]
    optional = instance_ids(launch())[0]
    mine = [{"Name": "instance-id", "Values": [required, optional]}]
    by = lambda name, value: _ids(ec2.describe_instances(Filters=mine + [{"Name": name, "Values": [value]}]))
    assert by("metadata-options.http-tokens", "required") == {required}
    assert by("metadata-options.http-tokens", "optional") == {optional}
    assert by("monitoring-state", "enabled") == {required}
    assert by("network-interface.attachment.device-index", "0") == {required, optional}
    assert by("network-interface.attachment.device-index", "1") == set()
    assert by("ebs-optimized", "false") == {required, optional}
    assert by("hypervisor", "xen") == {required, optional}
    assert by("launch-index", "0") == {required, optional}


def test_instance_type_filters_on_rendered_members(ec2):
    metal = ec2.describe_instance_types(Filters=[{"Name": "bare-metal", "Values": ["true"]}], MaxResults=100)["InstanceTypes"]
    assert metal and all(t["InstanceType"].endswith("metal") or ".metal-" in t["InstanceType"] for t in metal)
    ena = ec2.describe_instance_types(Filters=[{"Name": "network-info.ena-support", "Values": ["required"]},
                                               {"Name": "instance-type", "Values": ["t3.micro"]}])["InstanceTypes"]
    assert [t["InstanceType"] for t in ena] == ["t3.micro"]
    none = ec2.describe_instance_types(Filters=[{"Name": "network-info.ena-support", "Values": ["unsupported"]},
                                                {"Name": "instance-type", "Values": ["t3.micro"]}])["InstanceTypes"]
    assert none == []


def test_network_filters_on_rendered_members(ec2, zones):
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    # Subnets: AvailabilityZoneId, and a nested member of the launch options.
    zone_id = ec2.describe_availability_zones(ZoneNames=[zones[0]])["AvailabilityZones"][0]["ZoneId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "availability-zone-id", "Values": [zone_id]},
                                            {"Name": "vpc-id", "Values": [default_vpc["VpcId"]]}])["Subnets"]
    assert [s["AvailabilityZone"] for s in subnets] == [zones[0]]
    hostname = ec2.describe_subnets(Filters=[{"Name": "private-dns-name-options-on-launch.hostname-type", "Values": ["ip-name"]},
                                             {"Name": "vpc-id", "Values": [default_vpc["VpcId"]]}])["Subnets"]
    assert len(hostname) == len(zones)
    assert ec2.describe_subnets(Filters=[{"Name": "private-dns-name-options-on-launch.hostname-type", "Values": ["resource-name"]},
                                         {"Name": "vpc-id", "Values": [default_vpc["VpcId"]]}])["Subnets"] == []
    # VPCs: the CIDR association's state.
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr-block-association.state", "Values": ["associated"]},
                                      {"Name": "vpc-id", "Values": [default_vpc["VpcId"]]}])["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == [default_vpc["VpcId"]]
    # Route tables: a route's state.
    tables = ec2.describe_route_tables(Filters=[{"Name": "route.state", "Values": ["active"]},
                                                {"Name": "vpc-id", "Values": [default_vpc["VpcId"]]}])["RouteTables"]
    assert tables and all(t["VpcId"] == default_vpc["VpcId"] for t in tables)
    assert ec2.describe_route_tables(Filters=[{"Name": "route.state", "Values": ["blackhole"]},
                                              {"Name": "vpc-id", "Values": [default_vpc["VpcId"]]}])["RouteTables"] == []


def test_instance_placement_filters(ec2, launch, zones):
    iid = instance_ids(launch(Placement={"AvailabilityZone": zones[0]}))[0]
    zone_id = ec2.describe_availability_zones(ZoneNames=[zones[0]])["AvailabilityZones"][0]["ZoneId"]
    mine = [{"Name": "instance-id", "Values": [iid]}]
    assert _ids(ec2.describe_instances(Filters=mine + [{"Name": "availability-zone-id", "Values": [zone_id]}])) == {iid}
    assert _ids(ec2.describe_instances(Filters=mine + [{"Name": "tenancy", "Values": ["default"]}])) == {iid}
    assert _ids(ec2.describe_instances(Filters=mine + [{"Name": "tenancy", "Values": ["dedicated"]}])) == set()
    vol = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert _ids(ec2.describe_instances(Filters=[{"Name": "block-device-mapping.volume-id", "Values": [vol]}])) == {iid}


def test_image_filters_on_rendered_members(ec2, image):
    mine = [{"Name": "image-id", "Values": [image["ImageId"]]}]
    by = lambda name, value: [i["ImageId"] for i in ec2.describe_images(Filters=mine + [{"Name": name, "Values": [value]}])["Images"]]
    assert by("ena-support", "true") == [image["ImageId"]]
    assert by("ena-support", "false") == []
    assert by("sriov-net-support", "simple") == [image["ImageId"]]


def test_instance_status_filters_and_running_only_before_the_page(ec2, launch, wait):
    iid = instance_ids(launch())[0]
    wait("instance_running", [iid])
    got = ec2.describe_instance_status(Filters=[{"Name": "instance-status.status", "Values": ["ok"]}])["InstanceStatuses"]
    assert iid in [s["InstanceId"] for s in got]
    none = ec2.describe_instance_status(InstanceIds=[iid], Filters=[{"Name": "instance-status.status", "Values": ["impaired"]}])
    assert none["InstanceStatuses"] == []
    ec2.stop_instances(InstanceIds=[iid])
    wait("instance_stopped", [iid])
    # Without IncludeAllInstances a stopped instance is not listed, and pages count only the
    # listed ones.
    assert iid not in [s["InstanceId"] for s in ec2.describe_instance_status()["InstanceStatuses"]]
    seen = [s["InstanceId"] for s in ec2.describe_instance_status(IncludeAllInstances=True, InstanceIds=[iid])["InstanceStatuses"]]
    assert seen == [iid]
    page = ec2.describe_instance_status(MaxResults=5)
    assert all(s["InstanceState"]["Name"] == "running" for s in page["InstanceStatuses"])


def test_security_group_rule_filters_by_group_name_and_user(ec2, account_id, run_id):
    vpc = ec2.create_vpc(CidrBlock="10.233.0.0/16")["Vpc"]["VpcId"]
    made = []
    try:
        a = ec2.create_security_group(GroupName=f"a-{run_id}", Description="a", VpcId=vpc)["GroupId"]
        made.append(a)
        b = ec2.create_security_group(GroupName=f"b-{run_id}", Description="b", VpcId=vpc)["GroupId"]
        made.append(b)
        ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": b}]}])
        f = lambda name, value: [g["GroupId"] for g in ec2.describe_security_groups(
            Filters=[{"Name": name, "Values": [value]}, {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]]
        assert f("ip-permission.group-name", f"b-{run_id}") == [a]
        # The VPC's default group references itself, so it has the account as a user too.
        by_user = f("ip-permission.user-id", account_id)
        assert a in by_user and b not in by_user
        assert f("ip-permission.ipv6-cidr", "::/0") == []
    finally:
        for g in made:  # a first: its rule names b
            ec2.delete_security_group(GroupId=g)
        ec2.delete_vpc(VpcId=vpc)
