#!/usr/bin/env python3
"""Network benchmark: RunInstances to the SSH banner against a bare QEMU boot of the same image,
side by side in one run; and how long a security group change takes to be enforced.

1. Launch to SSH banner, for corral-minimal (t3.micro) and corral-debian-12 (t3.small).
   Corral: `corral serve` on real QEMU with its VPC namespaces under a prefix of this run and a
   namespace of this run playing the host (`--host-netns`). A key pair, tcp 22 open in the
   default security group; per run: t0 just before RunInstances, the PublicIpAddress from its
   response, then a prober inside the host namespace (started before t0, so its start-up is
   not counted) connects to ip:22 every 20 ms until a line starting `SSH-` arrives.
   Terminated (and waited for) between runs, so every run also pays for the VPC namespace,
   dnsmasq and metadata service that Corral sets up for the first instance of a VPC.
   Bare: the same kernel, initramfs, kernel command line and base disk (read from Corral's
   store, so exactly the image Corral launches; fresh qcow2 overlay per run), the QEMU
   arguments of crates/agent/src/qemu/cmdline.rs (checked against the command line of
   Corral's own QEMU for that image, instance-specific values aside), the NIC on a tap in a
   namespace of this run with what the image needs to come up as under Corral: dnsmasq with a
   fixed lease (router .1, MTU 1450, DNS) and a metadata service on 169.254.169.254:80
   (corral-minimal: crates/images/tests/fake_imds.py, as the image test uses; corral-debian-12:
   a fuller fake below, because cloud-init's Ec2 data source asks for versioned paths and
   crawls the meta-data listing, which fake_imds.py does not serve). t0 just before the
   overlay is made and QEMU started; the same prober connects to the guest's private IP.
   Medians of N runs, the two sides alternating which goes first; the ratio corral/bare is the
   figure. Each is split at the start of the QEMU process (its start time in /proc, 10 ms
   resolution): the launch path before it, the guest's boot after it.

2. Security group changes: one corral-minimal whose user-data listens on 8080. A prober in the
   host namespace sends a new TCP SYN to public-ip:8080 every 5 ms (each attempt waits up to
   0.5 s for an answer, less than the kernel's 1 s SYN retransmission, so an answered attempt
   was answered on its first SYN); any answer (SYN-ACK, or RST) means the packet passed the
   rules, no answer that it was dropped. Authorize: the figure is the send time of the first
   answered attempt minus the time AuthorizeSecurityGroupIngress returned (<= 0 when the rule
   was enforced before the HTTP response reached the client). Revoke: the send time of the
   first attempt of the final run of unanswered ones minus the time RevokeSecurityGroupIngress
   returned. Resolution: the 5 ms probe interval. Repeated --sg-runs times on the same
   instance; the API calls' own durations too (one unmeasured authorize/revoke first warms
   the client). Attempts left unanswered while the port was open are counted and shown: most
   likely SYNs the guest's listener (busybox nc, one accept at a time under TCG) had no room
   for; they can only move the revoke figure earlier, never later.

Usage: python3 bench/net_bench.py [--runs 3] [--debian-runs 1] [--skip-debian] [--sg-runs 5]
                                  [--keep-files]
Needs: root, target/release/corral, QEMU, dnsmasq, python3 with boto3, ssh-keygen, both images
in the image cache ($CORRAL_IMAGE_CACHE or /var/cache/corral/images; `corral images build`).

Network safety: everything happens in namespaces this run creates (`cnb-<tag>...`), deleted at
the end even on failure; the host's interfaces, routes and firewall are never touched. Every
process is started here and ended by its pid; at the end the run checks that no process
naming its tag and no namespace with its prefix is left.
"""
import argparse, json, os, queue, random, re, shutil, signal, sqlite3, statistics, subprocess, sys, tempfile, threading, time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY, SECRET = "AKIANETBENCHNETBENCH", "net-bench-secret-0123456789abcdefghijklmn"
TAG = f"{os.getpid() & 0xffff:04x}{random.randrange(0x10000):04x}"
HOST_NS = f"cnb-host-{TAG}"
BARE_NS = f"cnb-bare-{TAG}"
VPC_PREFIX = f"cnb-{TAG}-"
BARE_IP, BARE_MAC, BARE_ROUTER = "10.77.0.5", "02:00:0a:4d:00:05", "10.77.0.1"
BARE_ID = "i-0be4c4be4c4be4c40"
BARE_HOSTNAME = "ip-10-77-0-5.local-1.compute.internal"
IMAGES = {"corral-minimal": "t3.micro", "corral-debian-12": "t3.small"}
SG_USER_DATA = """#!/bin/sh
printf '#!/bin/sh\\necho hello\\n' > /var/tmp/h.sh
chmod 755 /var/tmp/h.sh
nc -ll -p 8080 -e /var/tmp/h.sh &
"""

# The prober, run inside a namespace as `python3 -c PROBER <tag> <mode>`. It says `ready`, reads
# `IP PORT` from stdin, says `probing <t>` and probes; it prints one JSON line and exits.
# Times are time.monotonic() (CLOCK_MONOTONIC, the same clock in every process of the host).
# Modes: banner (a SYN every 20 ms; done when a line starting SSH- arrives), open (a SYN every
# 5 ms; done at the first answer), closed (a SYN every 5 ms; done after 20 unanswered in a row).
PROBER = r'''
import errno, json, select, socket, sys, time
mode = sys.argv[2]
interval = 0.02 if mode == "banner" else 0.005
LIFE, READ_LIFE, CONFIRM, DEADLINE = 0.5, 10.0, 20, 600.0
print("ready", flush=True)
ip, port = sys.stdin.readline().split()
port = int(port)
poll = select.poll()
live = {}        # fd -> [sock, seq, send_t, state ("connect" | "read"), buf]
results = {}     # seq -> (send_t, answered, answer_t)
seq = 0
start = time.monotonic()
next_send = start
print(f"probing {start}", flush=True)

def done(out):
    print(json.dumps(out), flush=True)
    sys.exit(0)

def resolve(s, answered, now):
    results[s[1]] = (s[2], answered, now)
    poll.unregister(s[0])
    s[0].close()

def check(now):
    if mode == "open":
        ok = [(q, r) for q, r in results.items() if r[1]]
        if ok:
            q, r = min(ok)
            if all(p in results for p in range(q)):  # nothing sent earlier is still pending
                done({"t": r[0], "answer_t": r[2], "attempts": len(results), "first_t": start})
    elif mode == "closed":
        last_ok = max([q for q, r in results.items() if r[1]], default=-1)
        if all(q in results for q in range(last_ok + 1, last_ok + 1 + CONFIRM)):
            flaps = sum(1 for q, r in results.items() if q < last_ok and not r[1])
            done({"t": results[last_ok + 1][0], "attempts": len(results), "answered": last_ok >= 0,
                  "flaps": flaps, "first_t": start})

while True:
    now = time.monotonic()
    if now - start > DEADLINE:
        done({"t": None, "attempts": len(results), "first_t": start})
    if now >= next_send:
        next_send = max(next_send + interval, now + interval / 2)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((ip, port))
        entry = [s, seq, now, "connect", b""]
        seq += 1
        if err in (0, errno.EINPROGRESS):
            live[s.fileno()] = entry
            poll.register(s, select.POLLOUT)
        else:
            results[entry[1]] = (now, err == errno.ECONNREFUSED, now)
            s.close()
    for fd, ev in poll.poll(max(0.0, next_send - time.monotonic()) * 1000):
        e = live.get(fd)
        if e is None:
            continue
        now = time.monotonic()
        if e[3] == "connect":
            err = e[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if mode == "banner" and err == 0:
                e[3] = "read"
                poll.modify(e[0], select.POLLIN)
                continue
            del live[fd]
            # An answer (SYN-ACK, or RST: refused) means the SYN passed the rules.
            resolve(e, err in (0, errno.ECONNREFUSED), now)
        else:
            try:
                chunk = e[0].recv(256)
            except OSError:
                chunk = b""
            e[4] += chunk
            if e[4].startswith(b"SSH-") and b"\n" in e[4]:
                done({"t": now, "send_t": e[2], "banner": e[4].split(b"\n")[0].decode(errors="replace").strip(),
                      "attempts": seq, "first_t": start})
            if not chunk or (b"\n" in e[4]):
                del live[fd]
                resolve(e, True, now)
    now = time.monotonic()
    for fd, e in list(live.items()):
        if now - e[2] > (READ_LIFE if e[3] == "read" else LIFE):
            del live[fd]
            resolve(e, False, now)
    check(now)
'''

# A metadata service for the bare corral-debian-12 boot, as `python3 -c IMDS <tag> KEY_FILE`,
# inside the bare namespace on 169.254.169.254:80: IMDSv2 tokens and IMDSv1, any API version
# prefix (`latest`, `2021-03-23`, ...), listings of every directory, the identity document.
IMDS = r'''
import http.server, json, re, secrets, sys
key = open(sys.argv[2]).read()
iid, host, ip, mac = sys.argv[3:7]
doc = json.dumps({"instanceId": iid, "imageId": "ami-0be4c4be4c4be4c40", "instanceType": "t3.small",
                  "region": "local-1", "availabilityZone": "local-1a", "privateIp": ip, "accountId": "123456789012",
                  "architecture": "x86_64", "version": "2017-09-30"})
tree = {"meta-data": {"ami-id": "ami-0be4c4be4c4be4c40", "instance-id": iid, "instance-type": "t3.small",
                      "hostname": host, "local-hostname": host, "local-ipv4": ip, "mac": mac,
                      "placement": {"availability-zone": "local-1a", "region": "local-1"},
                      "public-keys": {"0": {"openssh-key": key}}},
        "dynamic": {"instance-identity": {"document": doc}}}
tokens = set()

def lookup(path):
    parts = [p for p in path.split("/") if p]
    if not parts or not re.fullmatch(r"latest|\d{4}-\d{2}-\d{2}|1\.0", parts[0]):
        return None
    node = tree
    for p in parts[1:]:
        if p == "user-data":
            return None
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    if isinstance(node, dict):
        if node is tree["meta-data"]["public-keys"]:
            return "0=net-bench"
        return "\n".join(k + "/" if isinstance(v, dict) and k != "0" else k for k, v in sorted(node.items()))
    return node

class H(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        if self.path != "/latest/api/token":
            return self.reply(404)
        t = secrets.token_urlsafe(24)
        tokens.add(t)
        self.reply(200, t.encode())
    def do_GET(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        if tok is not None and tok not in tokens:
            return self.reply(401)
        body = lookup(self.path.split("?")[0])
        if body is None:
            return self.reply(404)
        self.reply(200, body.encode())
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("169.254.169.254", 80), H).serve_forever()
'''


def log(msg):
    print(f"[net-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait(cond, what, deadline=300, poll=0.05):
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


def started(pid):
    """When process pid started, on time.monotonic()'s clock (10 ms resolution: clock ticks)."""
    ticks = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
    boottime_ago = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.monotonic() - boottime_ago


def pids_naming(needle):
    """Pids of processes whose command line contains `needle` (this one excluded)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid() and needle.encode() in b"\0".join(cmdline(int(d))):
            out.append(int(d))
    return out


class Procs:
    """Every process this run starts (Popen or daemonized pid); killed by pid at the end."""

    def __init__(self):
        self.popens, self.pids = [], []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.popens.append(p)
        return p

    def kill(self, p):
        if p.poll() is None:
            p.kill()
        p.wait()

    def kill_pid(self, pid, marker):
        """SIGKILL pid if it is still the process we started (its command line names marker)."""
        if marker.encode() in b"\0".join(cmdline(pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait(lambda: not pid_alive(pid) or not cmdline(pid), f"pid {pid} to exit", 30)

    def kill_all(self):
        for p in reversed(self.popens):
            try:
                self.kill(p)
            except Exception:
                pass


class Prober:
    """One prober process inside a namespace (see PROBER), started ahead of the timed action."""

    def __init__(self, procs, ns, mode):
        self.p = procs.spawn(["ip", "netns", "exec", ns, "python3", "-c", PROBER, TAG, mode],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.procs, self.lines = procs, queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.line(30) == "ready"

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def line(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"prober said nothing in {timeout} s")
        if line is None:
            raise RuntimeError(f"prober exited (status {self.p.wait()})")
        return line

    def start(self, ip, port):
        self.p.stdin.write(f"{ip} {port}\n")
        self.p.stdin.flush()
        return float(self.line(30).split()[1])

    def result(self, timeout):
        try:
            return json.loads(self.line(timeout))
        finally:
            self.procs.kill(self.p)


def accel():
    cpu = open("/proc/cpuinfo").read()
    kvm = re.search(r"\b(vmx|svm)\b", cpu) and not os.path.exists("/sys/module/kvm_pvm") and os.access("/dev/kvm", os.W_OK)
    if kvm:
        return "kvm", ["-accel", "kvm", "-cpu", "host"], ""
    mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", cpu).group(1))
    return "tcg", ["-accel", "tcg,tb-size=128", "-cpu", "max"], f" tsc_early_khz={int(mhz * 1000)} tsc=reliable"


def qemu_args(img, vcpus, mem, name, overlay, tap, mac, console, qmp, pidfile):
    """crates/agent/src/qemu/cmdline.rs for a direct-kernel image under this host's accelerator."""
    _, acc, tsc = accel()
    a = ["qemu-system-x86_64", "-name", f"guest={name}", "-no-user-config", "-nodefaults", "-nographic",
         "-machine", "microvm,rtc=on,pic=off", *acc, "-smp", str(vcpus), "-m", f"{mem}M",
         "-kernel", img["kernel"]]
    if img["initrd"]:
        a += ["-initrd", img["initrd"]]
    a += ["-append", f"console=ttyS0{tsc} {img['cmdline']}".strip(),
          "-drive", f"if=none,id=root,format=qcow2,discard=unmap,file={overlay}", "-device", "virtio-blk-device,drive=root",
          "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no", "-device", f"virtio-net-device,netdev=n0,mac={mac}",
          "-chardev", f"file,id=ser0,append=on,path={console}", "-serial", "chardev:ser0",
          "-qmp", f"unix:{qmp},server=on,wait=off", "-daemonize", "-pidfile", pidfile]
    return a


def normalize(argv):
    """QEMU arguments with the instance-specific values (name, paths, tap, MAC) blanked."""
    out = []
    for a in argv:
        a = re.sub(r"guest=\S+", "guest=X", a)
        a = re.sub(r"(file=|path=|unix:)[^,]+", r"\1X", a)
        a = re.sub(r"ifname=[^,]+", "ifname=X", a)
        a = re.sub(r"mac=[0-9a-f:]+", "mac=X", a)
        out.append("X" if a.startswith("/") and a.endswith(".pid") else a)
    return out


def ns_create(name):
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


class Bare:
    """The bare side: a namespace with a tap, dnsmasq and a metadata service; QEMU by hand."""

    def __init__(self, procs, tmp, pubkey):
        self.procs, self.tmp, self.pubkey = procs, tmp, pubkey
        ns_create(BARE_NS)
        for args in (["addr", "add", "169.254.169.254/32", "dev", "lo"], ["tuntap", "add", "dev", "tap0", "mode", "tap"],
                     ["addr", "add", f"{BARE_ROUTER}/24", "dev", "tap0"], ["link", "set", "tap0", "up"]):
            sh("ip", "-n", BARE_NS, *args)
        with open(f"{tmp}/bare-hosts", "w") as f:
            f.write(f"{BARE_IP} {BARE_HOSTNAME} {BARE_HOSTNAME.split('.')[0]}\n")
        out = open(f"{tmp}/bare-dnsmasq.out", "w")
        self.dnsmasq = procs.spawn(
            ["ip", "netns", "exec", BARE_NS, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", "--domain-needed", "--bogus-priv", "--interface=tap0", "--bind-interfaces", "--user=root",
             "--group=root", "--domain=local-1.compute.internal", "--local=/local-1.compute.internal/",
             f"--addn-hosts={tmp}/bare-hosts", f"--dhcp-range={BARE_ROUTER.rsplit('.', 1)[0]}.0,static,255.255.255.0,1h",
             f"--dhcp-host={BARE_MAC},{BARE_IP},{BARE_HOSTNAME.split('.')[0]}",
             f"--dhcp-option=option:router,{BARE_ROUTER}", "--dhcp-option=option:mtu,1450",
             f"--dhcp-option=option:dns-server,{BARE_ROUTER}", "--dhcp-option=option:domain-name,local-1.compute.internal",
             f"--dhcp-leasefile={tmp}/bare-leases", f"--pid-file={tmp}/bare-dnsmasq.pid", f"--log-facility={tmp}/bare-dnsmasq.log"],
            stdout=out, stderr=subprocess.STDOUT)
        self.imds = None
        self.n = 0

    def serve_metadata(self, image):
        if self.imds:
            self.procs.kill(self.imds)
        out = open(f"{self.tmp}/bare-imds.out", "a")
        if image == "corral-minimal":
            open(f"{self.tmp}/bare-user-data", "w").close()
            argv = ["python3", f"{ROOT}/crates/images/tests/fake_imds.py", "169.254.169.254", BARE_ID, BARE_HOSTNAME,
                    self.pubkey, f"{self.tmp}/bare-user-data", f"{self.tmp}/bare-imds.log"]
        else:
            argv = ["python3", "-c", IMDS, TAG, self.pubkey, BARE_ID, BARE_HOSTNAME, BARE_IP, BARE_MAC]
        self.imds = self.procs.spawn(["ip", "netns", "exec", BARE_NS, *argv], stdout=out, stderr=subprocess.STDOUT)
        # Serving once it answers inside the namespace.
        probe = "import urllib.request;urllib.request.urlopen('http://169.254.169.254/latest/meta-data/instance-id',timeout=1)"
        wait(lambda: sh("ip", "netns", "exec", BARE_NS, "python3", "-c", probe, check=False).returncode == 0, "bare metadata service", 30, 0.1)

    def boot(self, img, vcpus, mem):
        """Seconds from starting QEMU (overlay included) to the SSH banner and to the QEMU
        process's start; its arguments."""
        self.n += 1
        d = f"{self.tmp}/bare-{self.n}"
        os.makedirs(d)
        argv = qemu_args(img, vcpus, mem, f"cnb-{TAG}-bare-{self.n}", f"{d}/root.qcow2", "tap0", BARE_MAC,
                         f"{d}/console.log", f"{d}/qmp.sock", f"{d}/qemu.pid")
        prober = Prober(self.procs, BARE_NS, "banner")
        try:
            t0 = time.monotonic()
            sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", img["base_disk"], "-F", "qcow2", f"{d}/root.qcow2")
            with open(f"{d}/qemu.out", "w") as out:  # returns once QEMU has daemonized
                subprocess.run(["ip", "netns", "exec", BARE_NS, *argv], stdout=out, stderr=subprocess.STDOUT, check=True)
            q = started(int(open(f"{d}/qemu.pid").read())) - t0
            prober.start(BARE_IP, 22)
            r = prober.result(600)
        finally:
            self.procs.kill(prober.p)
            if os.path.exists(f"{d}/qemu.pid"):
                self.procs.kill_pid(int(open(f"{d}/qemu.pid").read()), f"cnb-{TAG}-bare-{self.n}")
        if r["t"] is None:
            raise RuntimeError(f"bare boot: no SSH banner; console:\n{open(f'{d}/console.log').read()[-3000:]}")
        os.remove(f"{d}/root.qcow2")
        return r["t"] - t0, q, argv


class Corral:
    """The Corral side: `corral serve` on real QEMU with this run's namespaces."""

    def __init__(self, procs, tmp):
        self.procs, self.tmp, self.state = procs, tmp, f"{tmp}/state"
        exe = os.environ.get("CORRAL_BIN", os.path.join(ROOT, "target/release/corral"))
        env = dict(os.environ, CORRAL_ACCESS_KEY_ID=KEY, CORRAL_SECRET_ACCESS_KEY=SECRET, CORRAL_LOG="warn")
        self.log = f"{tmp}/serve.log"
        self.srv = procs.spawn([exe, "serve", "--hypervisor", "qemu", "--listen", "127.0.0.1:0", "--state-dir", self.state,
                                "--images", "all", "--netns-prefix", VPC_PREFIX, "--host-netns", HOST_NS],
                               env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        ep = wait(lambda: os.path.exists(f"{self.state}/endpoint") and open(f"{self.state}/endpoint").read().split()[0], "endpoint", 60)
        self.ec2 = boto3.client("ec2", endpoint_url=ep, region_name="local-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET)

    def ami(self, name):
        imgs = self.ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"]
        return imgs[0]["ImageId"] if imgs and imgs[0]["State"] == "available" else None

    def image(self, name):
        """The image record Corral launches (its store, read-only): kernel, initrd, cmdline, disk."""
        db = sqlite3.connect(f"file:{self.state}/corral.db?mode=ro", uri=True)
        try:
            row = db.execute("SELECT base_disk, kernel, initrd, cmdline, recipe_hash FROM images WHERE name = ?", (name,)).fetchone()
        finally:
            db.close()
        return dict(zip(["base_disk", "kernel", "initrd", "cmdline", "recipe_hash"], row))

    def public_ip(self, iid, run_response):
        ip = run_response.get("PublicIpAddress")
        if ip:
            return ip, True
        get = lambda: self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0].get("PublicIpAddress")
        return wait(get, "public IP", 120, 0.02), False

    def launch(self, ami, itype, user_data=None):
        """Seconds from RunInstances to the SSH banner on its public IP and to its QEMU process's
        start; the instance."""
        prober = Prober(self.procs, HOST_NS, "banner")
        try:
            kw = {"UserData": user_data} if user_data else {}
            t0 = time.monotonic()
            inst = self.ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType=itype, KeyName="net-bench", **kw)["Instances"][0]
            iid = inst["InstanceId"]
            ip, in_response = self.public_ip(iid, inst)
            prober.start(ip, 22)
            r = prober.result(600)
        finally:
            self.procs.kill(prober.p)
        if r["t"] is None:
            raise RuntimeError(f"{iid}: no SSH banner on {ip}")
        q = started(int(open(f"{self.state}/vms/{iid}/qemu.pid").read())) - t0
        return r["t"] - t0, q, iid, ip, in_response

    def qemu_argv(self, iid):
        pid = int(open(f"{self.state}/vms/{iid}/qemu.pid").read())
        return [a.decode() for a in cmdline(pid)]

    def terminate(self, iids):
        self.ec2.terminate_instances(InstanceIds=iids)
        self.ec2.get_waiter("instance_terminated").wait(InstanceIds=iids, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
        # The last instance of the VPC is gone: Corral removes its namespace; wait for that, so
        # that every launch starts from the same state.
        wait(lambda: not [l for l in sh("ip", "netns", "list").stdout.splitlines() if l.startswith(VPC_PREFIX)],
             "Corral to remove its VPC namespaces", 30, 0.2)


def sg_change(procs, ip, prober_mode, call, kw):
    """Seconds from the call returning to the change being enforced at ip:8080, the call's own
    duration, the prober's report, and whether the change was seen before the call was made."""
    prober = Prober(procs, HOST_NS, prober_mode)
    try:
        prober.start(ip, 8080)
        time.sleep(0.2)  # the prober is sending before the call
        t_call = time.monotonic()
        call(**kw)
        t_ret = time.monotonic()
        r = prober.result(60)
    finally:
        procs.kill(prober.p)
    if r["t"] is None:
        raise RuntimeError(f"{prober_mode}: the change was never seen by the prober: {r}")
    return r["t"] - t_ret, t_ret - t_call, r, r["t"] < t_call


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def cleanup(procs, corral, tmp):
    """Terminate instances, stop serve, kill what is left of ours by pid, delete namespaces."""
    problems = []
    if corral is not None:
        try:
            live = [i["InstanceId"] for r in corral.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                    if i["State"]["Name"] != "terminated"]
            if live:
                log(f"terminating {live}")
                corral.terminate(live)
        except Exception as e:
            problems.append(f"terminating instances: {e}")
    procs.kill_all()
    # Guests outlive Corral by design: any QEMU whose command line names this run's directory.
    for pid in pids_naming(tmp):
        if b"qemu-system" in b"".join(cmdline(pid)[:1]):
            problems.append(f"QEMU {pid} was still running; killed")
            procs.kill_pid(pid, tmp)
    namespaces = [l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines() if l.strip()]
    ours = [n for n in namespaces if n.startswith(VPC_PREFIX) or n in (HOST_NS, BARE_NS)]
    for ns in ours:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            c = b" ".join(cmdline(int(pid)))
            problems.append(f"process {pid} ({c[:80]!r}) in {ns}; killed")
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if ns == BARE_NS:
            sh("ip", "-n", ns, "tuntap", "del", "dev", "tap0", "mode", "tap", check=False)
        r = sh("ip", "netns", "del", ns, check=False)
        if r.returncode != 0:
            problems.append(f"could not delete namespace {ns}: {r.stderr.strip()}")
    time.sleep(0.5)
    left = [p for p in pids_naming(TAG) + pids_naming(tmp)]
    left_ns = [l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines() if TAG in l]
    if left or left_ns:
        problems.append(f"LEFT BEHIND: processes {sorted(set(left))}, namespaces {left_ns}")
    for p in problems:
        log(f"cleanup: {p}")
    if not problems:
        log(f"cleanup: no process naming {TAG} and no namespace with it left")
    return problems


def main():
    ap = argparse.ArgumentParser(description="RunInstances to the SSH banner against a bare QEMU boot, and security group changes to their enforcement (the module docstring says how each is measured).")
    ap.add_argument("--runs", type=int, default=3, help="runs per side for corral-minimal (3)")
    ap.add_argument("--debian-runs", type=int, default=1, help="runs per side for corral-debian-12 (1; 40-60 s each under TCG)")
    ap.add_argument("--skip-debian", action="store_true")
    ap.add_argument("--sg-runs", type=int, default=5, help="authorize/revoke repetitions (5; 0 skips)")
    ap.add_argument("--keep-files", action="store_true", help="keep the run's directory (consoles, logs) at the end")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, taps)")
    kind, _, _ = accel()
    tmp = tempfile.mkdtemp(prefix=f"corral-net-bench-{TAG}-")
    # Corral's dnsmasq drops to `nobody` before it reads its host files in the state directory:
    # mkdtemp's 0700 would leave every guest without a DHCP lease.
    os.chmod(tmp, 0o755)
    log(f"tag {TAG}: namespaces {HOST_NS}, {BARE_NS}, {VPC_PREFIX}*; files in {tmp}; accelerator {kind}")
    procs, corral, failed = Procs(), None, True
    try:
        ns_create(HOST_NS)
        corral = Corral(procs, tmp)
        ec2 = corral.ec2
        images = ["corral-minimal"] + ([] if a.skip_debian else ["corral-debian-12"])
        amis = {n: wait(lambda n=n: corral.ami(n), f"{n} in DescribeImages", 1800, 1) for n in images}
        key = ec2.create_key_pair(KeyName="net-bench", KeyType="ed25519")["KeyMaterial"]
        with open(f"{tmp}/key.pem", "w") as f:
            f.write(key)
        os.chmod(f"{tmp}/key.pem", 0o600)
        with open(f"{tmp}/key.pub", "w") as f:
            f.write(sh("ssh-keygen", "-y", "-f", f"{tmp}/key.pem").stdout)
        sg = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        types = {t["InstanceType"]: t for t in ec2.describe_instance_types(InstanceTypes=list(IMAGES.values()))["InstanceTypes"]}
        bare = Bare(procs, tmp, f"{tmp}/key.pub")

        table = []
        for name in images:
            itype = IMAGES[name]
            img = corral.image(name)
            vcpus, mem = types[itype]["VCpuInfo"]["DefaultVCpus"], types[itype]["MemoryInfo"]["SizeInMiB"]
            log(f"{name} ({itype}: {vcpus} vCPUs, {mem} MiB), recipe {img['recipe_hash'][:12]}, disk {img['base_disk']}")
            bare.serve_metadata(name)
            runs = a.runs if name == "corral-minimal" else a.debian_runs
            rows = {"bare": [], "corral": []}
            for i in range(runs):
                # Alternate which side goes first, so neither always finds the caches warm.
                for side in (("bare", "corral") if i % 2 == 0 else ("corral", "bare")):
                    if side == "bare":
                        t, q, bare_argv = bare.boot(img, vcpus, mem)
                        rows["bare"].append((t, q))
                        log(f"{name} run {i + 1}/{runs}: bare   {t:7.2f} s to the SSH banner (QEMU started at {q:.2f} s)")
                    else:
                        t, q, iid, ip, in_resp = corral.launch(amis[name], itype)
                        rows["corral"].append((t, q))
                        log(f"{name} run {i + 1}/{runs}: corral {t:7.2f} s to the SSH banner (QEMU started at {q:.2f} s; {iid}, {ip}"
                            f"{'' if in_resp else ', public IP not in the RunInstances response'})")
                        corral_argv = corral.qemu_argv(iid)
                        with open(f"{tmp}/corral-{name}-{i + 1}-console.log", "w") as f:  # kept with --keep-files
                            f.write(ec2.get_console_output(InstanceId=iid).get("Output") or "")
                        corral.terminate([iid])
                if i == 0:
                    if normalize(corral_argv) != normalize(bare_argv):
                        log(f"WARNING: bare QEMU arguments differ from Corral's:\n  corral {normalize(corral_argv)}\n  bare   {normalize(bare_argv)}")
                    else:
                        log("bare QEMU arguments = Corral's (instance-specific names, paths, tap and MAC aside)")
            m = lambda side, f: med([f(t, q) for t, q in rows[side]])
            table.append((name, itype, runs, m("bare", lambda t, q: t), m("corral", lambda t, q: t),
                          m("bare", lambda t, q: q), m("corral", lambda t, q: q),
                          m("bare", lambda t, q: t - q), m("corral", lambda t, q: t - q)))

        sg_rows = []
        if a.sg_runs:
            t, _, iid, ip, _ = corral.launch(amis["corral-minimal"], "t3.micro", SG_USER_DATA)
            log(f"security groups: {iid} ({ip}) SSH banner after {t:.2f} s; waiting for its user-data")
            wait(lambda: "user-data done" in (ec2.get_console_output(InstanceId=iid).get("Output") or ""), "user-data", 120, 0.2)
            perm = lambda port: {"GroupId": sg, "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
            ec2.authorize_security_group_ingress(**perm(9))  # warm-up, not measured
            ec2.revoke_security_group_ingress(**perm(9))
            for i in range(a.sg_runs):
                o, o_call, ro, o_early = sg_change(procs, ip, "open", ec2.authorize_security_group_ingress, perm(8080))
                time.sleep(0.3)
                c, c_call, rc, c_early = sg_change(procs, ip, "closed", ec2.revoke_security_group_ingress, perm(8080))
                sg_rows.append((o, o_call, c, c_call))
                notes = []
                if o_early:
                    notes.append("8080 answered before Authorize was called")
                if c_early or not rc.get("answered"):
                    notes.append("8080 dropped before Revoke was called")
                if rc.get("flaps"):
                    notes.append(f"{rc['flaps']} unanswered attempts while open")
                log(f"security groups run {i + 1}/{a.sg_runs}: authorize enforced {o * 1000:+7.1f} ms after it returned "
                    f"(call {o_call * 1000:.1f} ms); revoke {c * 1000:+7.1f} ms (call {c_call * 1000:.1f} ms)"
                    + (f"  [{'; '.join(notes)}]" if notes else ""))
                time.sleep(0.3)
            corral.terminate([iid])

        print()
        print(f"accelerator {kind}; medians; launch to SSH banner:")
        print(f"  {'image':18s} {'type':9s} {'runs':>4s} {'bare':>8s} {'corral':>8s} {'ratio':>6s}   "
              f"{'to QEMU start: bare':>19s} {'corral':>7s}   {'QEMU start to banner: bare':>26s} {'corral':>7s}")
        for name, itype, runs, b, c, bq, cq, bg, cg in table:
            print(f"  {name:18s} {itype:9s} {runs:4d} {b:7.2f}s {c:7.2f}s {'x%.2f' % (c / b):>6s}   "
                  f"{bq:18.2f}s {cq:6.2f}s   {bg:25.2f}s {cg:6.2f}s")
        if sg_rows:
            col = lambda k: [r[k] * 1000 for r in sg_rows]
            print(f"security group changes, {len(sg_rows)} runs, ms from the call returning to enforcement (median / max),"
                  " and the call itself (median / max):")
            print(f"  authorize: {med(col(0)):+7.1f} / {max(col(0)):+7.1f}   call {med(col(1)):6.1f} / {max(col(1)):6.1f}")
            print(f"  revoke:    {med(col(2)):+7.1f} / {max(col(2)):+7.1f}   call {med(col(3)):6.1f} / {max(col(3)):6.1f}")
        failed = False
    finally:
        if failed and os.path.exists(f"{tmp}/serve.log"):
            tail = open(f"{tmp}/serve.log").read().splitlines()[-40:]
            print("--- corral serve log (last lines) ---\n" + "\n".join(tail), file=sys.stderr)
        problems = cleanup(procs, corral, tmp)
        if a.keep_files:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
