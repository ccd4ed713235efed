"""The README's flow, as a user runs it: `corral serve` with the real QEMU hypervisor, then
the aws CLI. Launches corral-minimal with a key pair and user-data, waits with the CLI's own
waiters, reads the guest's console, stops, starts, reboots and terminates it, and checks the
host's process table at each step.

Needs QEMU and the corral-minimal image (built into the image cache on first use).
"""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "corral-minimal: init ready"
KEY, SECRET = "AKIAE2ECLITESTKEY001", "e2e-cli-secret-0123456789abcdefghijklmno"


def wait(cond, what, deadline):
    start = time.time()
    while time.time() - start < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out after {deadline}s waiting for {what}")


def pids_with(needle):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if needle.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    out.append(int(pid))
            except OSError:
                pass
    return out


def namespaces(prefix):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [l.split()[0] for l in out.splitlines() if l.split() and l.split()[0].startswith(prefix)]


@pytest.fixture(scope="module")
def cli():
    exe = os.environ.get("CORRAL_BIN", os.path.join(ROOT, "target/debug/corral"))
    state = tempfile.mkdtemp(prefix="corral-e2e-cli-")
    env = dict(os.environ, CORRAL_ACCESS_KEY_ID=KEY, CORRAL_SECRET_ACCESS_KEY=SECRET)
    # Every network this test makes lives in namespaces of its own: Corral's VPC namespaces get
    # a prefix unique to this run, and a namespace made here plays the host for public IPs.
    tag = uuid.uuid4().hex[:8]
    prefix, host_ns = f"ce2ecli-{tag}-", f"ce2ecli-host-{tag}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    log = open(f"{state}/serve.log", "wb")
    srv = subprocess.Popen([exe, "serve", "--hypervisor", "qemu", "--listen", "127.0.0.1:0", "--state-dir", state,
                            "--images", "minimal", "--stop-timeout-secs", "30", "--netns-prefix", prefix,
                            "--host-netns", host_ns], env=env, stdout=log, stderr=log)
    try:
        wait(lambda: os.path.exists(f"{state}/endpoint"), "endpoint", 60)
        creds = subprocess.run([exe, "credentials", "--env", "--state-dir", state], check=True, capture_output=True, text=True).stdout
        cenv = dict(os.environ)
        for line in creds.splitlines():
            k, v = line.removeprefix("export ").split("=", 1)
            cenv[k] = v

        def aws(*args, check=True):
            r = subprocess.run(["aws", "ec2", *args, "--output", "json"], env=cenv, capture_output=True, text=True, timeout=120)
            if check and r.returncode != 0:
                raise AssertionError(f"aws ec2 {' '.join(args)} failed ({r.returncode}): {r.stderr}\nserver log: {state}/serve.log")
            return json.loads(r.stdout) if r.stdout.strip() else {}

        yield aws
    finally:
        srv.kill()
        srv.wait()
        # Guests outlive Corral by design; a failed test must not leave any behind.
        for pid in pids_with(state):
            if pid in pids_with("qemu-system"):
                os.kill(pid, 9)
        for ns in namespaces(prefix) + [host_ns]:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", ns])
        # What dnsmasq read, kept by Corral under /run/corral/net-<hash of the state directory>:
        # the directory holding this test's VPC directories.
        for vpc_dir in glob.glob(f"/run/corral/net-*/{prefix}*"):
            shutil.rmtree(os.path.dirname(vpc_dir), ignore_errors=True)


def test_readme_flow_on_a_real_guest(cli, tmp_path):
    images = wait(lambda: cli("describe-images", "--filters", "Name=name,Values=corral-minimal")["Images"],
                  "corral-minimal registered", 900)
    ami = images[0]["ImageId"]
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    key = cli("create-key-pair", "--key-name", name)
    assert key["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    ud = tmp_path / "user-data.sh"
    ud.write_text("#!/bin/sh\necho hello from user-data\n")
    run = cli("run-instances", "--image-id", ami, "--instance-type", "t3.nano", "--key-name", name,
              "--user-data", f"file://{ud}", "--tag-specifications", f"ResourceType=instance,Tags=[{{Key=Name,Value={name}}}]")
    iid = run["Instances"][0]["InstanceId"]
    assert run["Instances"][0]["State"]["Name"] == "pending"
    cli("wait", "instance-running", "--instance-ids", iid)
    assert len(pids_with(iid)) == 1
    out = wait(lambda: (lambda o: o if MARKER in o else None)(cli("get-console-output", "--instance-id", iid).get("Output") or ""),
               "init marker", 120)
    assert "Linux version" in out
    desc = cli("describe-instances", "--filters", f"Name=tag:Name,Values={name}")
    inst = desc["Reservations"][0]["Instances"][0]
    assert (inst["InstanceId"], inst["KeyName"], inst["InstanceType"]) == (iid, name, "t3.nano")

    cli("stop-instances", "--instance-ids", iid)
    cli("wait", "instance-stopped", "--instance-ids", iid)
    assert pids_with(iid) == []
    cli("start-instances", "--instance-ids", iid)
    cli("wait", "instance-running", "--instance-ids", iid)
    pid = pids_with(iid)
    assert len(pid) == 1
    wait(lambda: MARKER in (cli("get-console-output", "--instance-id", iid).get("Output") or ""), "marker after start", 120)
    cli("reboot-instances", "--instance-ids", iid)
    wait(lambda: (cli("get-console-output", "--instance-id", iid).get("Output") or "").count(MARKER) >= 2, "reboot marker", 120)
    assert pids_with(iid) == pid, "reboot keeps the process"

    # The README's storage commands, with the aws CLI's own waiters.
    az = inst["Placement"]["AvailabilityZone"]
    vol = cli("create-volume", "--size", "2", "--availability-zone", az)["VolumeId"]
    cli("wait", "volume-available", "--volume-ids", vol)
    att = cli("attach-volume", "--volume-id", vol, "--instance-id", iid, "--device", "/dev/sdf")
    assert att["Device"] == "/dev/sdf"
    cli("wait", "volume-in-use", "--volume-ids", vol)
    snap = cli("create-snapshot", "--volume-id", vol, "--description", "nightly")["SnapshotId"]
    cli("wait", "snapshot-completed", "--snapshot-ids", snap)
    image = cli("create-image", "--instance-id", iid, "--name", f"{name}-image", "--no-reboot")["ImageId"]
    cli("wait", "image-available", "--image-ids", image)
    mappings = cli("describe-instances", "--instance-ids", iid)["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mappings] == ["/dev/xvda", "/dev/sdf"], mappings
    cli("detach-volume", "--volume-id", vol)
    cli("wait", "volume-available", "--volume-ids", vol)
    cli("delete-volume", "--volume-id", vol)
    snaps = [m["Ebs"]["SnapshotId"] for m in cli("describe-images", "--image-ids", image)["Images"][0]["BlockDeviceMappings"]]
    cli("deregister-image", "--image-id", image)
    for s in snaps + [snap]:
        cli("delete-snapshot", "--snapshot-id", s)
    res = cli("terminate-instances", "--instance-ids", iid)
    assert res["TerminatingInstances"][0]["CurrentState"]["Name"] == "shutting-down"
    cli("wait", "instance-terminated", "--instance-ids", iid)
    assert pids_with(iid) == []
    cli("delete-key-pair", "--key-name", name)
