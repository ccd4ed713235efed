"""STS GetCallerIdentity answered at the EC2 endpoint (the SDKs and Ansible call it there)."""

from support import ACCOUNT_RE


def test_get_caller_identity_names_the_root_of_a_12_digit_account(sts, endpoint):
    ident = sts.get_caller_identity()
    assert ACCOUNT_RE.match(ident["Account"]), ident
    assert ident["Arn"] == f"arn:aws:iam::{ident['Account']}:root"
    assert ident["UserId"], "UserId must be present and non-empty"
    if endpoint.seeded_account_id:
        # The suite started the server with CORRAL_ACCOUNT_ID seeded.
        assert ident["Account"] == endpoint.seeded_account_id


def test_reservations_are_owned_by_the_caller_account(ec2, account_id, launch):
    reservation = launch()
    assert reservation["OwnerId"] == account_id
    described = ec2.describe_instances(InstanceIds=[reservation["Instances"][0]["InstanceId"]])
    assert described["Reservations"][0]["OwnerId"] == account_id
