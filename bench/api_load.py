#!/usr/bin/env python3
"""Load scenarios for the API benchmark (issue 9's targets): each server pinned to one core,
the same pre-signed request replayed by wrk from another core, at growing fleet sizes, Corral
and moto_server side by side in one run.

Scenarios (8 connections, wrk, 10 s each unless --seconds):
  one-id         DescribeInstances for one InstanceId
  page-100       DescribeInstances, MaxResults=100 (the first page)
  page-filtered  the same, filtered by a tag and instance-state-name=running
  group          DescribeSecurityGroups for one group
  subnets        DescribeSubnets of the default VPC's default subnets, each with its free
                 addresses: the same subnets at every fleet size, holding more interfaces
and, on one connection from Python, RunInstances + TerminateInstances pairs per second.

Each fleet size has a server of its own (Corral: its own state dir), grown once. Then every
server is measured once per round (--rounds, 3 by default), the others stopped with SIGSTOP,
in the fleets' order and backwards in the next round; each figure is the median of its rounds.
On this machine identical runs differ by up to 15% and a run drifts as it goes; measured one
fleet after the other, that drift showed up as a ratio between fleet sizes.

Usage: python3 bench/api_load.py [--fleets 1000,10000,50000] [--seconds 10] [--rounds 3] [--svg bench/api_load.svg]
       python3 bench/api_load.py --plot bench/api_load.json   (redraws the SVG from saved figures)
A server that fails a step (moto does not answer DescribeInstances within the client's timeout
at 10,000 instances) is reported and left out of the larger fleets; the figures so far are
saved to bench/api_load.json after every step.
Needs: wrk (apt install wrk), moto[server], a release build (CORRAL_BIN or target/release/corral).
Prints each round, then the medians with ratios (Corral against moto at each fleet size, and
Corral against its own figures at the first fleet size, the issue's target), each server's RSS,
and draws req/s against fleet size as SVG.
Then Corral is started again on the largest fleet's state, and its RSS read once it is idle.
"""
import argparse, os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_bench as ab  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

SCENARIOS = ["one-id", "page-100", "page-filtered", "group", "subnets"]


def lua(body, headers):
    q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = ['wrk.method = "POST"', f"wrk.body = {q(body)}"]
    lines += [f"wrk.headers[{q(k)}] = {q(v)}" for k, v in headers.items() if k.lower() not in ("content-length", "host")]
    return "\n".join(lines) + "\n"


def wrk(e, action, params, seconds, tmp):
    body, headers = e.signed(action, params)
    e.call(action, params)  # fails loudly if the request is refused
    script = os.path.join(tmp, f"{e.name}-{action}.lua")
    open(script, "w").write(lua(body.decode(), headers))
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "60s", "--latency", "-s", script,
                          f"http://127.0.0.1:{e.port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"{e.name} {action}: {errors.group(1)} error responses under load")
    return rps, p99_ms


# The default VPC's last /20 is kept out of the fleet: the launch+terminate pairs run in a
# subnet of it, so they never find the fleet's subnets full (and a fleet of 60,000 still fits).
PAIRS_BLOCK = 15


def pairs_cidr():
    return f"172.31.{16 * PAIRS_BLOCK}.0/24"


def pairs_subnet(e):
    """The subnet Corral's pairs launch into (made on first use): 172.31.240.0/24. moto's
    launch into its default subnet, far from full at the 1,000 instances it is grown to."""
    cidr = pairs_cidr()
    body = e.call("DescribeSubnets", {"Filter.1.Name": "cidr-block", "Filter.1.Value.1": cidr})
    found = re.search(rb"<subnetId>([^<]+)</subnetId>", body)
    if found:
        return found.group(1).decode()
    body = e.call("DescribeSubnets", {"Filter.1.Name": "default-for-az", "Filter.1.Value.1": "true"})
    vpc = re.search(rb"<vpcId>([^<]+)</vpcId>", body).group(1).decode()
    r = e.call("CreateSubnet", {"VpcId": vpc, "CidrBlock": cidr})
    return re.search(rb"<subnetId>([^<]+)</subnetId>", r).group(1).decode()


def subnets(e, n):
    """Subnets of the default VPC to spread `n` instances over: the default ones (a /20 per
    zone, about 4,000 addresses each), and more /20s of 172.31.0.0/16 when they do not hold
    the fleet (50,000 instances need 13)."""
    body = e.call("DescribeSubnets", {"Filter.1.Name": "default-for-az", "Filter.1.Value.1": "true"})
    vpc = re.search(rb"<vpcId>([^<]+)</vpcId>", body).group(1).decode()
    zones = re.findall(rb"<availabilityZone>([^<]+)</availabilityZone>", body)
    listed = ET.fromstring(e.call("DescribeSubnets", {"Filter.1.Name": "vpc-id", "Filter.1.Value.1": vpc}))
    child = lambda item, name: next((c.text for c in item if c.tag.endswith("}" + name) or c.tag == name), None)
    # Those of the fleet: every subnet of the VPC but the pairs' (see `pairs_subnet`).
    ids = [child(i, "subnetId") for i in listed.iter() if child(i, "subnetId") and child(i, "cidrBlock") not in (None, pairs_cidr())]
    block = 0
    while len(ids) * 4000 < n + 1000 and block < PAIRS_BLOCK:
        try:
            r = e.call("CreateSubnet", {"VpcId": vpc, "CidrBlock": f"172.31.{16 * block}.0/20",
                                        "AvailabilityZone": zones[block % len(zones)].decode()})
            ids.append(re.search(rb"<subnetId>([^<]+)</subnetId>", r).group(1).decode())
        except RuntimeError:
            pass  # that block is taken already
        block += 1
    return ids


def grow(e, ami, n):
    """Launches tagged instances until the fleet holds `n`, spread over the default VPC's
    subnets (see `subnets`)."""
    have = len(re.findall(rb"<instanceId>", e.call("DescribeInstances", {"Filter.1.Name": "tag:Name", "Filter.1.Value.1": "bench"})))
    nets = subnets(e, n)
    # Up to 10,000 instances round-robin over the subnets; beyond, each subnet filled in turn.
    at, full = (have // 100) % len(nets), 0
    while have < n:
        k = min(100, n - have)
        try:
            e.call("RunInstances", {"ImageId": ami, "MinCount": str(k), "MaxCount": str(k), "InstanceType": "t3.micro",
                                    "SubnetId": nets[at], "TagSpecification.1.ResourceType": "instance",
                                    "TagSpecification.1.Tag.1.Key": "Name", "TagSpecification.1.Tag.1.Value": "bench"})
        except RuntimeError as err:
            full += 1
            if "InsufficientFreeAddressesInSubnet" not in str(err) or full > len(nets):
                raise
            at = (at + 1) % len(nets)
            continue
        have, full = have + k, 0
        if n <= 10000:
            at = (at + 1) % len(nets)
    # Measure a settled fleet: none still pending (the reconciler works through big launches
    # for a while after the last call returns).
    t = time.time()
    while re.search(rb"<instanceId>", e.call("DescribeInstances", {"MaxResults": "5", "Filter.1.Name": "instance-state-name",
                                                                   "Filter.1.Value.1": "pending"})):
        if time.time() - t > 300:
            raise RuntimeError("instances still pending after 300 s")
        time.sleep(0.5)
    # And the growth's writes on disk: otherwise the kernel writes back the store's hundreds
    # of MiB while the first scenarios run (on the server's core too), and their p99 is that.
    os.sync()


def pairs(e, ami, count=600):
    """Launch+terminate pairs per second over `count` pairs, one after the other. 600, not
    200: at 50,000 instances, runs of 200 pairs (under half a second) gave 282 to 515 pairs/s
    one after the other, as a WAL checkpoint or the reconciler's periodic pass fell in one or
    not; a longer window takes its share of them instead of all or nothing."""
    subnet = pairs_subnet(e) if e.name == "corral" else None
    where = {"SubnetId": subnet} if subnet else {}
    t = time.perf_counter()
    for _ in range(count):
        body = e.call("RunInstances", {"ImageId": ami, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.micro", **where})
        iid = re.search(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body).group(1).decode()
        e.call("TerminateInstances", {"InstanceId.1": iid})
    return count / (time.perf_counter() - t)


def restart_rss(state, deadline=600):
    """Starts Corral again on a state dir (its first pass looks at every instance, and the
    simulated hypervisor's VMs are started again), waits until it uses under 2% of its core
    for 5 s, and returns (process, seconds until then, RSS in MiB)."""
    if os.path.exists(f"{state}/endpoint"):
        os.remove(f"{state}/endpoint")
    t = time.time()
    p, _, _ = ab.start_corral(state)
    subprocess.run(["taskset", "-a", "-pc", "0", str(p.pid)], check=True, capture_output=True)
    ticks = lambda: sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    while time.time() - t < deadline:
        a = ticks(); time.sleep(5); b = ticks()
        if b - a < 10:  # clock ticks of 10 ms: under 2% of 5 s
            break
    return p, time.time() - t, rss_mib(p.pid)


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scenario_params(e):
    body = e.call("DescribeInstances", {"MaxResults": "5"})
    iid = re.search(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body).group(1).decode()
    gid = re.search(rb"<groupId>(sg-[0-9a-f]+)</groupId>", e.call("DescribeSecurityGroups", {})).group(1).decode()
    return {
        "one-id": ("DescribeInstances", {"InstanceId.1": iid}),
        "page-100": ("DescribeInstances", {"MaxResults": "100"}),
        "page-filtered": ("DescribeInstances", {"MaxResults": "100", "Filter.1.Name": "tag:Name", "Filter.1.Value.1": "bench",
                                                "Filter.2.Name": "instance-state-name", "Filter.2.Value.1": "running"}),
        "group": ("DescribeSecurityGroups", {"GroupId.1": gid}),
        "subnets": ("DescribeSubnets", {"Filter.1.Name": "default-for-az", "Filter.1.Value.1": "true"}),
    }


def svg(results, fleets, path):
    """req/s against fleet size, one line per server and scenario (log scale on y)."""
    import math
    w, h, m = 720, 420, 60
    series = [(srv, sc) for sc in SCENARIOS for srv in ("corral", "moto")]
    vals = [results[(srv, n)][sc][0] for srv, sc in series for n in fleets if (srv, n) in results]
    lo, hi = math.log10(max(min(vals), 0.1)), math.log10(max(vals))
    hi = hi if hi > lo else lo + 1
    x = lambda i: m + (w - 2 * m) * (i / max(1, len(fleets) - 1))
    y = lambda v: h - m - (h - 2 * m) * ((math.log10(max(v, 0.1)) - lo) / (hi - lo))
    colours = {"one-id": "#1f77b4", "page-100": "#ff7f0e", "page-filtered": "#2ca02c", "group": "#d62728", "subnets": "#9467bd"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="20" text-anchor="middle">requests/s against fleet size (solid: Corral, dashed: moto; log scale)</text>']
    for i, n in enumerate(fleets):
        out.append(f'<text x="{x(i)}" y="{h - m + 20}" text-anchor="middle">{n:,} instances</text>')
    for e in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
        out.append(f'<text x="{m - 8}" y="{y(10 ** e) + 4}" text-anchor="end">{10 ** e:g}</text>')
        out.append(f'<line x1="{m}" x2="{w - m}" y1="{y(10 ** e)}" y2="{y(10 ** e)}" stroke="#ddd"/>')
    for srv, sc in series:
        pts = [(x(i), y(results[(srv, n)][sc][0])) for i, n in enumerate(fleets) if (srv, n) in results]
        dash = "" if srv == "corral" else ' stroke-dasharray="6,4"'
        out.append(f'<polyline fill="none" stroke="{colours[sc]}" stroke-width="2"{dash} points="'
                   + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts) + '"/>')
    for k, sc in enumerate(SCENARIOS):
        out.append(f'<text x="{m + 10 + 120 * k}" y="{h - 12}" fill="{colours[sc]}">{sc}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def save(results, path):
    import json
    rows = [{"server": srv, "fleet": n, **{k: list(v) if isinstance(v, tuple) else v for k, v in r.items()}}
            for (srv, n), r in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    open(path, "w").write(json.dumps(rows, indent=1) + "\n")


def load(path):
    import json
    rows = json.load(open(path))
    return {(r["server"], r["fleet"]): {k: (tuple(v) if isinstance(v, list) else v) for k, v in r.items() if k not in ("server", "fleet")}
            for r in rows}


def settle(pid, deadline=180):
    """Waits until a server uses under 2% of its core for a second (after SIGCONT, Corral's
    reconciler first makes up the full pass it missed while stopped)."""
    ticks = lambda: sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    t = time.time()
    while time.time() - t < deadline:
        a = ticks(); time.sleep(1); b = ticks()
        if b - a < 2:  # clock ticks of 10 ms
            return
    raise RuntimeError(f"server {pid} still busy after {deadline} s")


def median_round(rounds):
    """Per scenario, the median of the rounds' req/s and the median of their p99s."""
    import statistics
    return {k: (statistics.median(r[k][0] for r in rounds), statistics.median(r[k][1] for r in rounds))
            for k in rounds[0]}


def line(r):
    return ("  ".join(f"{sc} {r[sc][0]:8.1f}/s p99 {r[sc][1]:7.1f} ms" for sc in SCENARIOS)
            + f"  run+terminate {r['pairs'][0]:6.1f} pairs/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleets", default="1000,10000,50000")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each server, interleaved; the median is reported")
    ap.add_argument("--svg", default=os.path.join(ab.ROOT, "bench", "api_load.svg"))
    ap.add_argument("--skip-moto", action="store_true")
    ap.add_argument("--moto-max", type=int, default=10000, help="largest fleet moto is asked to grow to")
    ap.add_argument("--json", default=os.path.join(ab.ROOT, "bench", "api_load.json"))
    ap.add_argument("--plot", help="only redraw the SVG from this saved JSON")
    ap.add_argument("--no-restart", action="store_true", help="skip restarting Corral on the largest fleet to read its RSS")
    a = ap.parse_args()
    if a.plot:
        results = load(a.plot)
        svg(results, sorted({n for _, n in results}), a.svg)
        print(f"plot: {a.svg}")
        return
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt install wrk")
    ab.check_signer()
    fleets = [int(f) for f in a.fleets.split(",")]
    # The client (wrk, and this process for the pairs) on the core the servers are not on.
    os.sched_setaffinity(0, {1})
    tmp = tempfile.mkdtemp(prefix="corral-load-")
    procs = []
    try:
        # One server per fleet size (its own state dir for Corral), grown once, then stopped
        # (SIGSTOP) while the others grow or are measured.
        cells = []
        for n in fleets:
            for kind in ("corral", "moto"):
                if kind == "moto" and (a.skip_moto or n > a.moto_max):
                    continue
                state = os.path.join(tmp, f"{kind}-{n}")
                if kind == "corral":
                    os.makedirs(state)
                    p, e, ami = ab.start_corral(state)
                else:
                    p, e, ami = ab.start_moto()
                procs.append(p)
                subprocess.run(["taskset", "-a", "-pc", "0", str(p.pid)], check=True, capture_output=True)
                try:
                    grow(e, ami, n)
                    params = scenario_params(e)
                except Exception as err:  # a server that cannot keep up is reported, not fatal
                    print(f"{n:>7,} {e.name:6s} failed to grow: {err!r:.200}", flush=True)
                    p.kill(); p.wait(); procs.remove(p)
                    continue
                print(f"{n:>7,} {e.name:6s} grown", flush=True)
                p.send_signal(signal.SIGSTOP)
                cells.append({"name": kind, "n": n, "p": p, "e": e, "ami": ami, "params": params, "state": state, "rounds": []})
        # Rounds: every server measured once per round, in the order of the fleets, then
        # backwards in the next round, so that a machine that drifts during the run weighs on
        # every fleet alike; each figure is the median of its rounds.
        results = {}
        for k in range(a.rounds):
            for c in (cells if k % 2 == 0 else cells[::-1]):
                p, e = c["p"], c["e"]
                p.send_signal(signal.SIGCONT)
                try:
                    settle(p.pid)
                    r = {sc: wrk(e, *c["params"][sc], a.seconds, tmp) for sc in SCENARIOS}
                    r["pairs"] = (pairs(e, c["ami"]), 0)
                except Exception as err:
                    print(f"{c['n']:>7,} {e.name:6s} round {k + 1} failed: {err!r:.200}", flush=True)
                    continue
                finally:
                    p.send_signal(signal.SIGSTOP)
                c["rounds"].append(r)
                print(f"{c['n']:>7,} {e.name:6s} round {k + 1}  " + line(r), flush=True)
                results[(c["name"], c["n"])] = {**median_round(c["rounds"]), "rss": rss_mib(p.pid), "rounds": c["rounds"]}
                save(results, a.json)
        print(f"medians of {a.rounds} rounds:")
        base = results.get(("corral", fleets[0]))
        for n in fleets:
            for name in ("corral", "moto"):
                if (name, n) in results:
                    r = results[(name, n)]
                    print(f"{n:>7,} {name:6s} " + line(r) + f"  RSS {r['rss']:6.0f} MiB", flush=True)
            if ("corral", n) in results and ("moto", n) in results:
                c, m = results[("corral", n)], results[("moto", n)]
                ratio = lambda sc: f"x{c[sc][0] / m[sc][0]:.2f}" if m[sc][0] else "(moto: none in time)"
                print(f"{n:>7,} corral/moto  " + "  ".join(f"{sc} {ratio(sc)}" for sc in SCENARIOS + ["pairs"]), flush=True)
            if base and n != fleets[0] and ("corral", n) in results:
                c = results[("corral", n)]
                print(f"{n:>7,} corral/corral at {fleets[0]:,}  "
                      + "  ".join(f"{sc} {c[sc][0] / base[sc][0]:.2f}" for sc in SCENARIOS + ["pairs"]), flush=True)
        largest = next((c for c in reversed(cells) if c["name"] == "corral"), None)
        if largest and ("corral", largest["n"]) in results and not a.no_restart:
            cp = largest["p"]
            procs.remove(cp); cp.kill(); cp.wait()
            cp, idle_after, rss = restart_rss(largest["state"]); procs.append(cp)
            results[("corral", largest["n"])]["rss_restart"] = rss
            save(results, a.json)
            print(f"{largest['n']:>7,} corral restarted on its state: idle after {idle_after:.0f} s, RSS {rss:.0f} MiB", flush=True)
        svg(results, fleets, a.svg)
        print(f"plot: {a.svg}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.kill(); p.wait()


if __name__ == "__main__":
    main()
