"""Flows through the real `aws ec2 ...` command line (aws CLI v1 or v2), asserting on its JSON
output and exit codes. A service error exits 254 (v2, recent v1) or 255 (older v1) and names the
EC2 error code on stderr."""

import base64
import json
import os
import shutil
import subprocess

import pytest

from support import RUN_ID, RUN_TAG_KEY, instance_ids, unique

pytestmark = pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")

SERVICE_ERROR_EXIT = (254, 255)


@pytest.fixture(scope="module")
def aws(endpoint, tmp_path_factory):
    home = tmp_path_factory.mktemp("aws-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": endpoint.secret_key,
        "AWS_DEFAULT_REGION": endpoint.region,
        "AWS_ENDPOINT_URL": endpoint.url,
        # Nobody's profile or config file leaks into the run.
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
        "HOME": str(home),
    })

    def run(*args, check=True, env_override=None):
        cmd = ["aws", "--endpoint-url", endpoint.url, "--output", "json", *args]
        proc = subprocess.run(cmd, env={**env, **(env_override or {})}, capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr}"
        return proc

    def run_json(*args):
        out = run(*args).stdout
        return json.loads(out) if out.strip() else None

    run.json = run_json
    return run


def test_run_describe_terminate_with_user_data_file(aws, ec2, tracker, wait, image_id, instance_type, tmp_path):
    script = "#!/bin/sh\necho from-the-cli\n"
    user_data = tmp_path / "user-data.sh"
    user_data.write_text(script)
    run = aws.json(
        "ec2", "run-instances",
        "--image-id", image_id, "--instance-type", instance_type, "--count", "1",
        "--user-data", f"file://{user_data}",
        "--tag-specifications", f"ResourceType=instance,Tags=[{{Key={RUN_TAG_KEY},Value={RUN_ID}}},{{Key=Name,Value=cli}}]",
    )
    instance = run["Instances"][0]["InstanceId"]
    tracker.instances([instance])
    assert run["Instances"][0]["State"]["Name"] == "pending"
    wait("instance_running", [instance])

    state = aws.json("ec2", "describe-instances", "--instance-ids", instance,
                     "--query", "Reservations[0].Instances[0].State.Name")
    assert state == "running"
    names = aws.json("ec2", "describe-instances", "--filters", "Name=tag:Name,Values=cli",
                     f"Name=instance-id,Values={instance}",
                     "--query", "Reservations[].Instances[].InstanceId")
    assert names == [instance]

    # The CLI base64-encodes file:// user data once; the attribute comes back base64-encoded.
    attr = aws.json("ec2", "describe-instance-attribute", "--instance-id", instance, "--attribute", "userData")
    assert base64.b64decode(attr["UserData"]["Value"]).decode() == script

    terminated = aws.json("ec2", "terminate-instances", "--instance-ids", instance)
    change = terminated["TerminatingInstances"][0]
    assert change["InstanceId"] == instance
    assert change["PreviousState"]["Name"] == "running"
    assert change["CurrentState"]["Name"] in ("shutting-down", "terminated")
    wait("instance_terminated", [instance])


def test_create_key_pair_query_writes_a_usable_key(aws, key_name, tmp_path):
    name = key_name("cli")
    material = aws("ec2", "create-key-pair", "--key-name", name, "--query", "KeyMaterial", "--output", "text").stdout
    key_file = tmp_path / f"{name}.pem"
    key_file.write_text(material)
    key_file.chmod(0o600)
    if shutil.which("ssh-keygen"):
        pub = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True)
        described = aws.json("ec2", "describe-key-pairs", "--key-names", name, "--include-public-key",
                             "--query", "KeyPairs[0].PublicKey")
        assert described.split()[:2] == pub.stdout.split()[:2]
    listed = aws.json("ec2", "describe-key-pairs", "--filters", f"Name=key-name,Values={name}",
                      "--query", "KeyPairs[].KeyName")
    assert listed == [name]
    aws("ec2", "delete-key-pair", "--key-name", name)
    gone = aws("ec2", "describe-key-pairs", "--key-names", name, check=False)
    assert gone.returncode in SERVICE_ERROR_EXIT
    assert "InvalidKeyPair.NotFound" in gone.stderr


def test_describe_images_with_filter_and_query(aws, image):
    found = aws.json("ec2", "describe-images", "--filters", f"Name=name,Values={image['Name']}",
                     "--query", "Images[].ImageId")
    assert image["ImageId"] in found


def test_service_error_exit_code_and_message(aws):
    proc = aws("ec2", "describe-instances", "--instance-ids", "i-0123456789abcdef0", check=False)
    assert proc.returncode in SERVICE_ERROR_EXIT, proc.returncode
    assert "InvalidInstanceID.NotFound" in proc.stderr
    assert proc.stdout.strip() == ""


def test_dry_run_through_the_cli(aws, image_id, instance_type):
    proc = aws("ec2", "run-instances", "--image-id", image_id, "--instance-type", instance_type,
               "--count", "1", "--dry-run", check=False)
    assert proc.returncode in SERVICE_ERROR_EXIT
    assert "DryRunOperation" in proc.stderr


def test_bad_secret_through_the_cli(aws):
    proc = aws("ec2", "describe-regions", check=False, env_override={"AWS_SECRET_ACCESS_KEY": "x" * 40})
    assert proc.returncode in SERVICE_ERROR_EXIT
    assert "SignatureDoesNotMatch" in proc.stderr


def test_sts_through_the_cli(aws, account_id):
    ident = aws.json("sts", "get-caller-identity")
    assert ident["Account"] == account_id
    assert ident["Arn"] == f"arn:aws:iam::{account_id}:root"


def test_cli_auto_pagination(aws, launch):
    marker = unique("clipage")
    made = instance_ids(launch(MinCount=7, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "clipage", "Value": marker}]}]))
    # --page-size makes the CLI fetch 5 at a time and follow NextToken itself.
    ids = aws.json("ec2", "describe-instances", "--page-size", "5",
                   "--filters", f"Name=tag:clipage,Values={marker}",
                   "--query", "Reservations[].Instances[].InstanceId")
    assert sorted(ids) == sorted(made)


# Every Describe Corral serves that the aws CLI can call with no options at all (as a new
# user's first command would); the CLI v1 fills in paging members such as MaxResults=1000.
DESCRIBE_WITH_NO_OPTIONS = [
    "describe-regions", "describe-availability-zones", "describe-account-attributes", "describe-instance-types",
    "describe-images", "describe-key-pairs", "describe-instances", "describe-instance-status", "describe-tags",
    "describe-vpcs", "describe-subnets", "describe-security-groups", "describe-security-group-rules",
    "describe-network-interfaces", "describe-internet-gateways", "describe-route-tables", "describe-addresses",
    "describe-volumes", "describe-volumes-modifications", "describe-snapshots", "describe-volume-status",
    "describe-network-acls", "describe-instance-credit-specifications", "describe-instance-type-offerings",
    "describe-addresses-attribute", "describe-placement-groups", "describe-snapshot-tier-status",
]


@pytest.mark.parametrize("command", DESCRIBE_WITH_NO_OPTIONS)
def test_every_describe_with_no_options(aws, command):
    out = aws.json("ec2", command)
    assert isinstance(out, dict), out


def test_the_no_options_list_covers_every_served_describe():
    # The served actions are listed in README.md from the dispatch table.
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme[readme.index("<!-- actions:begin"):readme.index("<!-- actions:end")]
    served = {a.strip(" .\n") for a in block.split("\n", 1)[1].split(",")}
    kebab = lambda name: re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
    describes = {kebab(a) for a in served if a.startswith("Describe")}
    # Those need an id or attribute name to mean anything, as on AWS.
    need_args = {"describe-instance-attribute", "describe-vpc-attribute", "describe-image-attribute",
                 "describe-volume-attribute", "describe-snapshot-attribute"}
    assert describes - need_args == set(DESCRIBE_WITH_NO_OPTIONS), describes ^ set(DESCRIBE_WITH_NO_OPTIONS)
