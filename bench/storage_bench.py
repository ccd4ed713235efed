#!/usr/bin/env python3
"""Storage benchmark: Corral's copy-on-write CreateVolume, CreateSnapshot and CreateImage against
copying the same disk with `cp` and `qemu-img convert`, side by side in one run, on one file
system.

The disk: the corral-debian-12 image's root snapshot (its layer is a standalone qcow2 of about
400 MB allocated in Corral's pool). Corral: `corral serve` on real QEMU (`--images all`, both
default images from the image cache) in a state directory of this run, its VPC namespaces under
a prefix of this run and a namespace of this run playing the host (`--host-netns`). Timed, each
from just before the call until it has returned and DescribeX shows the resource in its final
state (polled every 20 ms where the response does not already say so):

  CreateVolume        from the Debian snapshot (a new qcow2 overlay on the snapshot's layer)
  CreateSnapshot      of that volume, not attached (offline: `qemu-img create -b`)
  CreateSnapshot live of a volume from the Debian snapshot attached at launch (/dev/sdf) to a
                      running corral-minimal instance (`qemu-img create -b`, then QMP
                      blockdev-snapshot-sync onto it)
  CreateImage         NoReboot=True of that instance, until the image is `available` (snapshots
                      its root and its /dev/sdf volume, live)

Baselines, each copying the Debian snapshot's layer file into this run's directory, next to
the pool: `cp --reflink=never` (a plain cp on this file system; --reflink=never makes sure it
copies where reflinks exist), `cp --sparse=always --reflink=never`, `qemu-img convert -f qcow2
-O qcow2` (a flattening copy: what a snapshot costs without copy-on-write), and, for scale,
`qemu-img create -f qcow2 -b` (the bare overlay Corral's offline path runs).

Per operation and run:
  seconds       from the start of the call (command) until it returned (and the state was
                final); then the files it wrote are fsync'ed (for Corral every pool file that is
                new or changed; for a baseline its output) and `+fsync` is the time until that
                is done too: a copy that returns with 400 MB still in the page cache has not
                finished, and its writeback would otherwise land in the next measurement.
  bytes         growth of the allocated bytes (sum of st_blocks * 512) of the pool's files
                (Corral) or of the output file (baselines), measured before and after.
  write_bytes   the kernel's I/O accounting (/proc/PID/io write_bytes: bytes of page cache
                dirtied or written directly), summed over `corral serve` (which includes the
                qemu-img processes it ran and reaped), and every QEMU of the run (which
                opens a live snapshot's new layer and updates it); for baselines, this process's
                (including the reaped command). Includes Corral's store (SQLite) writes.
One unmeasured run of every operation warms caches first; then N rounds, Corral's operations
and the baselines alternating which goes first. Medians. The page cache is never dropped
(global state); instead each measured file is fsync'ed as said above.

All created resources are deleted through the API at the end (instance, volumes, snapshots,
images), the pool is checked to be back to the layers it had before, then `corral serve` is
stopped and the run's directory removed.

Usage: python3 bench/storage_bench.py [--runs 3] [--keep-files]
(CORRAL_LOG=info in the environment makes serve.log show each live snapshot's duration.)
Needs: root, target/release/corral (cargo build --release -p corral-cli), QEMU and qemu-img,
dnsmasq, python3 with boto3, both default images in the image cache ($CORRAL_IMAGE_CACHE or
/var/cache/corral/images; `corral images build`).

Network safety: everything happens in namespaces this run creates (`csb-<tag>...`), deleted at
the end even on failure; the host's interfaces, routes and firewall are never touched. Every
process is started here and ended by its pid; at the end the run checks that no process naming
its tag or directory and no namespace with its tag is left.
"""
import argparse, json, os, random, re, shutil, signal, sqlite3, statistics, subprocess, sys, tempfile, time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT, KEY, SECRET = "210987654321", "AKIASTORAGEBENCHSTOR", "storage-bench-secret-0123456789abcdefghij"
TAG = f"{os.getpid() & 0xffff:04x}{random.randrange(0x10000):04x}"
HOST_NS = f"csb-host-{TAG}"
VPC_PREFIX = f"csb-{TAG}-"
MARKER = "corral-minimal: init ready"
POLL = 0.02


def log(msg):
    print(f"[storage-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait(cond, what, deadline=300, poll=POLL):
    t = time.monotonic()
    while time.monotonic() - t < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll)
    raise RuntimeError(f"timed out after {deadline} s waiting for {what}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]
    except OSError:
        return []


def pids_naming(needle):
    """Pids of processes whose command line contains `needle` (this one excluded)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid() and needle.encode() in b"\0".join(cmdline(int(d))):
            out.append(int(d))
    return out


def write_bytes(pid):
    """The kernel's count of bytes pid (and the children it reaped) dirtied or wrote; 0 when
    the process is gone."""
    try:
        for line in open(f"/proc/{pid}/io"):
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def allocated(path):
    return os.stat(path).st_blocks * 512


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def accel():
    cpu = open("/proc/cpuinfo").read()
    kvm = re.search(r"\b(vmx|svm)\b", cpu) and not os.path.exists("/sys/module/kvm_pvm") and os.access("/dev/kvm", os.W_OK)
    return "kvm" if kvm else "tcg"


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


class Procs:
    """Every process this run starts; killed by pid at the end."""

    def __init__(self):
        self.popens = []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.popens.append(p)
        return p

    def stop(self, p, grace=20):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
        p.wait()

    def kill_all(self):
        for p in reversed(self.popens):
            try:
                self.stop(p)
            except Exception:
                pass


class Pool:
    """The files of Corral's pool directory: what is allocated, what changed."""

    def __init__(self, path):
        self.path = path

    def files(self):
        out = {}
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return out
        for n in names:
            try:
                s = os.stat(f"{self.path}/{n}")
            except FileNotFoundError:
                continue
            out[n] = (s.st_ino, s.st_size, s.st_blocks, s.st_mtime_ns)
        return out

    @staticmethod
    def allocated(files):
        return sum(f[2] for f in files.values()) * 512

    def sync_changed(self, before):
        """fsync every file that is new or changed since `before`, and the directory."""
        changed = [n for n, f in self.files().items() if before.get(n) != f]
        for n in changed:
            try:
                fsync_path(f"{self.path}/{n}")
            except FileNotFoundError:
                pass
        fsync_path(self.path)
        return changed


class Corral:
    """`corral serve` on real QEMU with this run's state directory and namespaces."""

    def __init__(self, procs, tmp):
        self.procs, self.state = procs, f"{tmp}/state"
        exe = os.environ.get("CORRAL_BIN", os.path.join(ROOT, "target/release/corral"))
        env = dict(os.environ, CORRAL_ACCOUNT_ID=ACCOUNT, CORRAL_ACCESS_KEY_ID=KEY, CORRAL_SECRET_ACCESS_KEY=SECRET,
                   CORRAL_LOG=os.environ.get("CORRAL_LOG", "warn"))
        self.log = f"{tmp}/serve.log"
        self.srv = procs.spawn([exe, "serve", "--hypervisor", "qemu", "--listen", "127.0.0.1:0", "--state-dir", self.state,
                                "--images", "all", "--netns-prefix", VPC_PREFIX, "--host-netns", HOST_NS],
                               env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        ep = wait(lambda: os.path.exists(f"{self.state}/endpoint") and open(f"{self.state}/endpoint").read().split()[0],
                  "endpoint", 60)
        self.ec2 = boto3.client("ec2", endpoint_url=ep, region_name="local-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        self.pool = Pool(f"{self.state}/pool")
        self.instances = []

    def image(self, name):
        imgs = self.ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
        return imgs[0] if imgs and imgs[0]["State"] == "available" else None

    def snapshot_layer(self, snapshot_id):
        """The pool file holding a snapshot's layer (read from the store, read-only)."""
        db = sqlite3.connect(f"file:{self.state}/corral.db?mode=ro", uri=True)
        try:
            row = db.execute("SELECT body FROM docs WHERE kind = 'snapshot' AND id = ?", (snapshot_id,)).fetchone()
        finally:
            db.close()
        if not row or not json.loads(row[0]).get("layer"):
            raise RuntimeError(f"snapshot {snapshot_id}: no layer in the store")
        return f"{self.pool.path}/{json.loads(row[0])['layer']}.qcow2"

    def pids(self):
        """corral serve and every QEMU of its instances (for their write_bytes)."""
        out = [self.srv.pid]
        for iid in self.instances:
            try:
                out.append(int(open(f"{self.state}/vms/{iid}/qemu.pid").read()))
            except (OSError, ValueError):
                pass
        return out

    def qemu_pid(self, iid):
        return int(open(f"{self.state}/vms/{iid}/qemu.pid").read())


def measure(pool, pids, call):
    """Runs call(); returns its result and (seconds, seconds with fsync, pool growth, write_bytes)."""
    before = pool.files()
    w0 = sum(write_bytes(p) for p in pids())
    t0 = time.perf_counter()
    result = call()
    t1 = time.perf_counter()
    pool.sync_changed(before)
    t2 = time.perf_counter()
    grown = Pool.allocated(pool.files()) - Pool.allocated(before)
    w1 = sum(write_bytes(p) for p in pids())
    return result, (t1 - t0, t2 - t0, grown, w1 - w0)


def baseline(argv, out):
    """Runs a copy command into `out`; (seconds, seconds with fsync, allocated bytes of out,
    write_bytes). `out` is removed afterwards (not timed)."""
    if os.path.exists(out):
        os.remove(out)
    me = os.getpid()
    w0 = write_bytes(me)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    t1 = time.perf_counter()
    fsync_path(out)
    fsync_path(os.path.dirname(out))
    t2 = time.perf_counter()
    w1 = write_bytes(me)
    size = allocated(out)
    os.remove(out)
    return t1 - t0, t2 - t0, size, w1 - w0


def cleanup(procs, corral, tmp, created, pool_before):
    """Deletes what the run made through the API, stops serve, kills what is left of ours by
    pid, deletes the namespaces; checks nothing is left."""
    problems = []
    if corral is not None:
        ec2 = corral.ec2
        try:
            live = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                    if i["State"]["Name"] != "terminated"]
            if live:
                log(f"terminating {live}")
                ec2.terminate_instances(InstanceIds=live)
                ec2.get_waiter("instance_terminated").wait(InstanceIds=live, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
            # The VPC's last instance is gone: Corral removes its namespace (dnsmasq, metadata
            # service) on its own; let it, before serve is stopped.
            wait(lambda: not [l for l in sh("ip", "netns", "list").stdout.splitlines() if l.startswith(VPC_PREFIX)],
                 "Corral to remove its VPC namespaces", 30, 0.2)
        except Exception as e:
            problems.append(f"terminating instances: {e}")
        for kind, ids in (("image", created["images"]), ("volume", created["volumes"]), ("snapshot", created["snapshots"])):
            for rid in ids:
                try:
                    if kind == "image":
                        ec2.deregister_image(ImageId=rid)
                    elif kind == "volume":
                        wait(lambda: ec2.describe_volumes(VolumeIds=[rid])["Volumes"][0]["State"] == "available",
                             f"{rid} to be available", 60, 0.2)
                        ec2.delete_volume(VolumeId=rid)
                    else:
                        ec2.delete_snapshot(SnapshotId=rid)
                except Exception as e:
                    if "NotFound" not in str(e):
                        problems.append(f"deleting {kind} {rid}: {e}")
        if pool_before is not None:
            try:
                # Layers nothing refers to are collected after each delete; give the last one a moment.
                wait(lambda: sorted(n for n in corral.pool.files() if n.endswith(".qcow2")) == pool_before,
                     "the pool to be back to its layers from the start", 10, 0.2)
                log(f"cleanup: the pool is back to its {len(pool_before)} layers from before the run")
            except Exception:
                left = sorted(set(corral.pool.files()) - set(pool_before))
                problems.append(f"pool files left after deleting everything: {left}")
    procs.kill_all()
    # Guests outlive Corral by design: any QEMU whose command line names this run's directory.
    for pid in pids_naming(tmp):
        if b"qemu-system" in b"".join(cmdline(pid)[:1]):
            problems.append(f"QEMU {pid} was still running; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait(lambda: not pid_alive(pid) or not cmdline(pid), f"pid {pid} to exit", 30)
    namespaces = [l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines() if l.strip()]
    for ns in [n for n in namespaces if n.startswith(VPC_PREFIX) or n == HOST_NS]:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            problems.append(f"process {pid} ({b' '.join(cmdline(int(pid)))[:80]!r}) in {ns}; killed")
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        r = sh("ip", "netns", "del", ns, check=False)
        if r.returncode != 0:
            problems.append(f"could not delete namespace {ns}: {r.stderr.strip()}")
    time.sleep(0.5)
    left = pids_naming(TAG) + pids_naming(tmp)
    left_ns = [l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines() if TAG in l]
    if left or left_ns:
        problems.append(f"LEFT BEHIND: processes {sorted(set(left))}, namespaces {left_ns}")
    for p in problems:
        log(f"cleanup: {p}")
    if not problems:
        log(f"cleanup: no process naming {TAG} or {tmp} and no namespace with {TAG} left")
    return problems


def main():
    ap = argparse.ArgumentParser(description="Corral's CreateVolume, CreateSnapshot and CreateImage against cp and qemu-img "
                                             "convert of the same disk (the module docstring says how each is measured).")
    ap.add_argument("--runs", type=int, default=3, help="measured runs of every operation (3), after one warm-up run")
    ap.add_argument("--keep-files", action="store_true", help="keep the run's directory (serve log, console) at the end")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, QEMU guests with taps)")
    tmp = tempfile.mkdtemp(prefix=f"corral-storage-bench-{TAG}-")
    # Corral's dnsmasq drops to `nobody` before it reads its host files in the state directory.
    os.chmod(tmp, 0o755)
    log(f"tag {TAG}: namespaces {HOST_NS}, {VPC_PREFIX}*; files in {tmp}; accelerator {accel()}")
    procs, corral, failed = Procs(), None, True
    created = {"images": [], "volumes": [], "snapshots": []}
    pool_before = None
    try:
        sh("ip", "netns", "add", HOST_NS)
        sh("ip", "-n", HOST_NS, "link", "set", "lo", "up")
        corral = Corral(procs, tmp)
        ec2 = corral.ec2
        t = time.monotonic()
        minimal = wait(lambda: corral.image("corral-minimal"), "corral-minimal in DescribeImages", 1800, 1)
        debian = wait(lambda: corral.image("corral-debian-12"), "corral-debian-12 in DescribeImages", 1800, 1)
        log(f"images registered after {time.monotonic() - t:.1f} s: {minimal['ImageId']} (corral-minimal), "
            f"{debian['ImageId']} (corral-debian-12)")
        pool_before = sorted(n for n in corral.pool.files() if n.endswith(".qcow2"))
        root = debian["RootDeviceName"]
        snap = next(m["Ebs"]["SnapshotId"] for m in debian["BlockDeviceMappings"] if m["DeviceName"] == root)
        base = corral.snapshot_layer(snap)
        info = json.loads(sh("qemu-img", "info", "-U", "--output=json", base).stdout)
        if info.get("backing-filename"):
            log(f"WARNING: the Debian snapshot's layer {base} is an overlay on {info['backing-filename']}")
        log(f"disk: {snap}, layer {os.path.basename(base)}: {human(info['virtual-size'])} virtual, "
            f"{human(allocated(base))} allocated, {human(os.path.getsize(base))} file size")
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]

        # The instance for the live operations: corral-minimal, with a volume from the Debian
        # snapshot attached at launch.
        t = time.monotonic()
        inst = ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 BlockDeviceMappings=[{"DeviceName": "/dev/sdf",
                                                       "Ebs": {"SnapshotId": snap, "DeleteOnTermination": True}}])["Instances"][0]
        iid = inst["InstanceId"]
        corral.instances.append(iid)
        ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        # Let the guest finish booting, so that its TCG boot does not compete with what is measured.
        wait(lambda: MARKER in (ec2.get_console_output(InstanceId=iid).get("Output") or ""), "the guest's init marker", 300, 0.5)
        desc = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        data_vol = next(m["Ebs"]["VolumeId"] for m in desc["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
        log(f"{iid} running with {data_vol} (from {snap}) on /dev/sdf, guest booted after {time.monotonic() - t:.1f} s")
        time.sleep(2)

        def create_volume():
            v = ec2.create_volume(AvailabilityZone=zone, SnapshotId=snap)
            created["volumes"].append(v["VolumeId"])
            if v["State"] != "available":
                wait(lambda: ec2.describe_volumes(VolumeIds=[v["VolumeId"]])["Volumes"][0]["State"] == "available",
                     f"{v['VolumeId']} available", 120)
            return v["VolumeId"]

        def create_snapshot(vol):
            s = ec2.create_snapshot(VolumeId=vol)
            created["snapshots"].append(s["SnapshotId"])
            if s["State"] != "completed":
                state = wait(lambda: (lambda st: st if st != "pending" else None)(
                    ec2.describe_snapshots(SnapshotIds=[s["SnapshotId"]])["Snapshots"][0]["State"]), f"{s['SnapshotId']}", 300)
                if state != "completed":
                    raise RuntimeError(f"{s['SnapshotId']} ended {state}")
            return s["SnapshotId"]

        n_images = [0]

        def create_image():
            n_images[0] += 1
            image_id = ec2.create_image(InstanceId=iid, Name=f"storage-bench-{TAG}-{n_images[0]}", NoReboot=True)["ImageId"]
            created["images"].append(image_id)

            def state():
                st = ec2.describe_images(ImageIds=[image_id])["Images"][0]
                return st if st["State"] != "pending" else None
            img = wait(state, f"{image_id} available", 600)
            if img["State"] != "available":
                raise RuntimeError(f"{image_id} ended {img['State']}")
            created["snapshots"].extend(m["Ebs"]["SnapshotId"] for m in img["BlockDeviceMappings"] if m.get("Ebs", {}).get("SnapshotId"))
            return image_id

        def corral_ops():
            rows = {}
            vol, rows["CreateVolume (from the snapshot)"] = measure(corral.pool, corral.pids, create_volume)
            _, rows["CreateSnapshot (offline, that volume)"] = measure(corral.pool, corral.pids, lambda: create_snapshot(vol))
            _, rows["CreateSnapshot (live, attached volume)"] = measure(corral.pool, corral.pids, lambda: create_snapshot(data_vol))
            _, rows["CreateImage (NoReboot, root + /dev/sdf)"] = measure(corral.pool, corral.pids, create_image)
            return rows

        out = f"{tmp}/copy.qcow2"
        baselines = {
            "cp": ["cp", "--reflink=never", base, out],
            "cp --sparse=always": ["cp", "--sparse=always", "--reflink=never", base, out],
            "qemu-img convert -O qcow2": ["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", base, out],
            "qemu-img create -b (bare overlay)": ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", out],
        }

        def baseline_ops():
            return {name: baseline(argv, out) for name, argv in baselines.items()}

        log("warm-up run of every operation (not measured)")
        corral_ops()
        baseline_ops()
        results = {}
        load0 = os.getloadavg()[0]
        for i in range(a.runs):
            order = (("corral", corral_ops), ("baseline", baseline_ops))
            for side, run in (order if i % 2 == 0 else order[::-1]):
                for name, r in run().items():
                    results.setdefault(name, []).append(r)
                    log(f"run {i + 1}/{a.runs}: {name:42s} {r[0]:8.3f} s  +fsync {r[1]:8.3f} s  bytes {human(r[2]):>10s}  "
                        f"write_bytes {human(r[3]):>10s}")

        ref = lambda name: [med([r[k] for r in results[name]]) for k in range(4)]
        cp, cv = ref("cp"), ref("qemu-img convert -O qcow2")
        print()
        print(f"accelerator {accel()}; {a.runs} runs, medians; disk: corral-debian-12 root snapshot, "
              f"{human(allocated(base))} allocated ({human(info['virtual-size'])} virtual); "
              f"load average {load0:.2f} at the start of the measured runs, {os.getloadavg()[0]:.2f} at the end")
        print("time ratios: returned / +fsync, each against the same column of the reference")
        print("| operation | seconds | seconds +fsync | bytes (allocated growth) | write_bytes | time vs cp | time vs convert "
              "| bytes vs cp | bytes vs convert |")
        print("|---|---|---|---|---|---|---|---|---|")
        ratio = lambda x, y: "-" if not y else f"x{x / y:.2f}" if x / y >= 0.1 else f"x{x / y:.2g}"
        for name, rs in results.items():
            s, sf, b, w = (med([r[k] for r in rs]) for k in range(4))
            print(f"| {name} | {s:.3f} s | {sf:.3f} s | {human(int(b))} | {human(int(w))} "
                  f"| {ratio(s, cp[0])} / {ratio(sf, cp[1])} | {ratio(s, cv[0])} / {ratio(sf, cv[1])} "
                  f"| {ratio(b, cp[2])} | {ratio(b, cv[2])} |")
        failed = False
    finally:
        if failed and corral is not None and os.path.exists(corral.log):
            tail = open(corral.log).read().splitlines()[-40:]
            print("--- corral serve log (last lines) ---\n" + "\n".join(tail), file=sys.stderr)
        problems = cleanup(procs, corral, tmp, created, pool_before)
        if a.keep_files:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
