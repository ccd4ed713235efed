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
