#!/usr/bin/env python3
"""Boot benchmark: Corral's launch against a bare QEMU boot of the same image, side by side
in one run.

Corral: RunInstances (t3.nano: 2 vCPUs, 512 MiB) until the guest's first console line shows
in GetConsoleOutput, and until corral-minimal's init marker does (polled through the API every
20 ms, as a user would). The Corral guest has a network (default VPC: DHCP, metadata, sshd
before the marker) and the bare one none, so only the first-line ratio compares like with
like; bench/net_bench.py compares boots to the SSH banner with a network on both sides. Bare: the same kernel, initramfs and a fresh qcow2 overlay on the
same base disk, started by hand with the same machine options, timed to the first byte and
the marker in its serial log (polled every 20 ms). Medians of N runs; the ratio is the figure.

Also reports how long RunInstances itself takes to return on the QEMU path.

With --fleets, also times RunInstances with the host already holding that many instances
(stopped ones, so their guests leave the cores to the call; a QEMU host holds at most 64).

Usage: python3 bench/boot_bench.py [--runs 5] [--fleets 0,16,32,63 [--calls 7]]
Needs: target/release/corral, QEMU, the corral-minimal image in the image cache
($CORRAL_IMAGE_CACHE or /var/cache/corral/images; `corral images build --only corral-minimal`).
"""
import argparse, glob, json, uuid, os, shutil, statistics, subprocess, sys, tempfile, time, re

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_bench  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY, SECRET = "AKIABOOTBENCHBOOT000", "boot-bench-secret-0123456789abcdefghijklm"
MARKER = b"corral-minimal: init ready"
POLL = 0.02


def wait(cond, what, deadline=300):
    t = time.time()
    while time.time() - t < deadline:
        v = cond()
        if v:
            return v
        time.sleep(POLL)
    sys.exit(f"timed out waiting for {what}")


def accel_args():
    cpu = open("/proc/cpuinfo").read()
    kvm = re.search(r"\b(vmx|svm)\b", cpu) and not os.path.exists("/sys/module/kvm_pvm") and os.access("/dev/kvm", os.W_OK)
    if kvm:
        return ["-accel", "kvm", "-cpu", "host"], ""
    mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", cpu).group(1))
    return ["-accel", "tcg,tb-size=128", "-cpu", "max"], f" tsc_early_khz={int(mhz * 1000)} tsc=reliable"


def image_dir():
    cache = os.environ.get("CORRAL_IMAGE_CACHE", "/var/cache/corral/images")
    dirs = sorted(glob.glob(f"{cache}/corral-minimal-*/manifest.json"), key=os.path.getmtime)
    if not dirs:
        sys.exit(f"no corral-minimal in {cache}: run `corral images build --only corral-minimal`")
    return os.path.dirname(dirs[-1])


def bare_boot(img, man, tmp):
    accel, extra = accel_args()
    ov = f"{tmp}/bare.qcow2"
    log = f"{tmp}/bare-console.log"
    for p in (ov, log):
        if os.path.exists(p):
            os.remove(p)
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", f"{img}/{man['base_disk']}", "-F", "qcow2", ov], check=True)
    q = subprocess.Popen(["qemu-system-x86_64", "-name", "bare-bench", "-no-user-config", "-nodefaults", "-nographic",
                          "-machine", "microvm,rtc=on,pic=off", *accel, "-smp", "2", "-m", "512M",
                          "-kernel", f"{img}/{man['kernel']}", "-initrd", f"{img}/{man['initrd']}",
                          "-append", f"console=ttyS0{extra} {man['cmdline']}",
                          "-drive", f"if=none,id=root,format=qcow2,file={ov}", "-device", "virtio-blk-device,drive=root",
                          "-chardev", f"file,id=ser0,path={log}", "-serial", "chardev:ser0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        read = lambda: open(log, "rb").read() if os.path.exists(log) else b""
        wait(lambda: read().strip(), "bare first line")
        first = time.perf_counter() - t0
        wait(lambda: MARKER in read(), "bare marker")
        marker = time.perf_counter() - t0
    finally:
        q.kill(); q.wait()
    return first, marker


def corral_boot(ec2, raw, ami):
    """Times RunInstances itself (a signed request over a kept-alive connection, without
    boto3's own cost) and the boot to the first console line and the marker."""
    t0 = time.perf_counter()
    body = raw.call("RunInstances", {"ImageId": ami, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.nano"})
    api = time.perf_counter() - t0
    iid = re.search(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body).group(1).decode()
    # boto3 already base64-decodes Output.
    out = lambda: (ec2.get_console_output(InstanceId=iid).get("Output") or "").encode()
    wait(lambda: out().strip(), "corral first line")
    first = time.perf_counter() - t0
    wait(lambda: MARKER in out(), "corral marker")
    marker = time.perf_counter() - t0
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return first, marker, api


def run_at_fleets(ec2, raw, ami, fleets, calls):
    """RunInstances on the QEMU path with the host already holding `n` instances, for each
    `n` of `fleets` (ascending; a QEMU host holds at most 64, stopped ones included). The
    fleet is made of stopped instances (launched, then stopped with Force), so their guests
    do not compete with the call for this machine's cores; each timed instance is terminated
    before the next call. Returns {n: sorted call times in ms}."""
    out, have = {}, []
    for n in fleets:
        while len(have) < n:
            k = min(16, n - len(have))
            r = ec2.run_instances(ImageId=ami, MinCount=k, MaxCount=k, InstanceType="t3.nano")
            ids = [i["InstanceId"] for i in r["Instances"]]
            ec2.stop_instances(InstanceIds=ids, Force=True)
            ec2.get_waiter("instance_stopped").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
            have += ids
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            body = raw.call("RunInstances", {"ImageId": ami, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.nano"})
            times.append((time.perf_counter() - t0) * 1000)
            iid = re.search(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body).group(1).decode()
            ec2.terminate_instances(InstanceIds=[iid])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        out[n] = sorted(times)
        print(f"  fleet {n:3d}: RunInstances {statistics.median(out[n]):.1f} ms median, slowest {out[n][-1]:.1f} ms ({calls} calls)", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fleets", help="also time RunInstances with the host holding this many (stopped) instances, e.g. 0,16,32,63")
    ap.add_argument("--calls", type=int, default=7, help="RunInstances calls timed at each of --fleets")
    a = ap.parse_args()
    img = image_dir()
    man = json.load(open(f"{img}/manifest.json"))
    tmp = tempfile.mkdtemp(prefix="corral-boot-bench-")
    os.chmod(tmp, 0o755)  # dnsmasq runs as nobody and reads its files under the state directory
    exe = os.environ.get("CORRAL_BIN", os.path.join(ROOT, "target/release/corral"))
    env = dict(os.environ, CORRAL_ACCESS_KEY_ID=KEY, CORRAL_SECRET_ACCESS_KEY=SECRET, CORRAL_LOG="warn",
               CORRAL_IMAGE_CACHE=os.path.dirname(img))
    # Instances land in the default VPC: its namespace and the host side of public IPs live in
    # namespaces of this run, removed at the end.
    tag = uuid.uuid4().hex[:8]
    prefix, host_ns = f"cboot-{tag}-", f"cboot-host-{tag}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    srv = subprocess.Popen([exe, "serve", "--hypervisor", "qemu", "--listen", "127.0.0.1:0", "--state-dir", f"{tmp}/state",
                            "--images", "minimal", "--netns-prefix", prefix, "--host-netns", host_ns],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ep = wait(lambda: os.path.exists(f"{tmp}/state/endpoint") and open(f"{tmp}/state/endpoint").read().split()[0], "endpoint")
        ec2 = boto3.client("ec2", endpoint_url=ep, region_name="local-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        ami = wait(lambda: [i["ImageId"] for i in ec2.describe_images(Filters=[{"Name": "name", "Values": ["corral-minimal"]}])["Images"]],
                   "image")[0]
        raw = api_bench.Endpoint("corral", int(ep.rsplit(":", 1)[1].strip("/")), "local-1")
        raw.key, raw.secret = KEY, SECRET
        rows = {"corral": [], "bare": []}
        for i in range(a.runs):
            rows["bare"].append(bare_boot(img, man, tmp))
            rows["corral"].append(corral_boot(ec2, raw, ami))
        if a.fleets:
            print("RunInstances on the QEMU path against the instances the host holds:")
            run_at_fleets(ec2, raw, ami, [int(n) for n in a.fleets.split(",")], a.calls)
        if not a.runs:
            return
        accel = "kvm" if accel_args()[0][1] == "kvm" else "tcg"
        med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rows.items()}
        print(f"accelerator {accel}, {a.runs} runs each, medians:")
        for k in ("bare", "corral"):
            print(f"  {k:6s} first console line {med[k][0]:6.2f} s   init marker {med[k][1]:6.2f} s")
        print(f"ratio corral/bare: first line x{med['corral'][0]/med['bare'][0]:.2f}, marker x{med['corral'][1]/med['bare'][1]:.2f}")
        apis = sorted(r[2] * 1000 for r in rows["corral"])
        print(f"RunInstances returned in {statistics.median(apis):.1f} ms (median; slowest {apis[-1]:.1f} ms)")
    finally:
        srv.kill(); srv.wait()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
        for ns in [l.split()[0] for l in listed if l.startswith(prefix)] + [host_ns]:
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
                os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
