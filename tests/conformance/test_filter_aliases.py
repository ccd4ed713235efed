"""Filter names AWS accepts besides the documented ones, because the tools send them:
Terraform's aws_vpc data source sends `isDefault`, Ansible's ec2_vpc_net sends `cidr-block`."""


def test_default_vpc_by_is_default_alias(ec2):
    documented = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    alias = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    assert len(documented) == 1 and documented[0]["IsDefault"]
    assert [v["VpcId"] for v in alias] == [v["VpcId"] for v in documented]


def test_vpc_by_cidr_block_alias(ec2, run_id):
    vpc = ec2.create_vpc(CidrBlock="10.213.0.0/16")["Vpc"]
    try:
        found = ec2.describe_vpcs(Filters=[{"Name": "cidr-block", "Values": ["10.213.0.0/16"]}])["Vpcs"]
        assert [v["VpcId"] for v in found] == [vpc["VpcId"]]
        none = ec2.describe_vpcs(Filters=[{"Name": "cidr-block", "Values": ["10.214.0.0/16"]}])["Vpcs"]
        assert none == []
    finally:
        ec2.delete_vpc(VpcId=vpc["VpcId"])
