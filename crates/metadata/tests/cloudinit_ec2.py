"""Runs cloud-init's own Ec2 data source against the metadata service and prints what it saw.

Usage (inside the instance's network namespace, PYTHONPATH holding cloud-init's source):
    python3 cloudinit_ec2.py aws|unknown

`aws` is cloud-init's mode on a platform it identifies as AWS (SMBIOS says EC2): IMDSv2 tokens
only. `unknown` is a guest without SMBIOS (microvm, `ci.ds=Ec2`, `strict_id: false`), where
cloud-init tries a token and falls back to IMDSv1.
"""

import json
import sys
import tempfile
from unittest import mock

from cloudinit import helpers
from cloudinit.sources import DataSourceEc2 as ec2ds

mode = sys.argv[1]
tmp = tempfile.mkdtemp()
sys_cfg = {
    "datasource": {
        "Ec2": {
            "metadata_urls": ["http://169.254.169.254"],
            "max_wait": 20,
            "timeout": 5,
            "strict_id": False,
        }
    }
}
paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
ds = ec2ds.DataSourceEc2(sys_cfg, distro=mock.MagicMock(), paths=paths)
ds._cloud_name = ec2ds.CloudNames.AWS if mode == "aws" else ec2ds.CloudNames.UNKNOWN

ok = ds._get_data()
out = {
    "ok": ok,
    "api_version": (ds._crawled_metadata or {}).get("_metadata_api_version"),
    "used_token": ds._api_token is not None,
}
if ok:
    out.update(
        {
            "instance_id": ds.get_instance_id(),
            "availability_zone": ds.availability_zone,
            "region": ds.region,
            "hostname": ds.metadata.get("local-hostname"),
            "local_ipv4": ds.metadata.get("local-ipv4"),
            "public_keys": ds.get_public_ssh_keys(),
            "userdata": ds.userdata_raw.decode() if ds.userdata_raw else None,
            "identity": ds.identity,
            "macs": ds.metadata.get("network", {}).get("interfaces", {}).get("macs", {}),
            "security_groups": ds.metadata.get("security-groups"),
        }
    )
print(json.dumps(out))
