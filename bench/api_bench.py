#!/usr/bin/env python3
"""API benchmark: Corral (simulated hypervisor) against moto's EC2 server, side by side in
one run, same client, same calls.

Measures RunInstances requests/s (sequential, one instance per call) until each endpoint holds
N instances, then DescribeInstances latency (p50/p99) listing all of them (MaxResults 1000,
following NextToken where a server pages smaller). Requests are signed with SigV4 (`sign`
below, checked against botocore's signer at start) and sent over one keep-alive connection;
responses are read but not parsed, so the figures are the server's, not the client's.

Usage: python3 bench/api_bench.py [--instances 1000] [--describes 200]
Needs: target/release/corral (cargo build --release -p corral-cli), moto[server] from PyPI.
"""
import argparse, datetime, hashlib, hmac, http.client, os, statistics, subprocess, sys, tempfile, time, urllib.parse, socket, re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY, SECRET, REGION = "AKIABENCHBENCHBENCH0", "bench-secret-0123456789abcdefghijklmnopqr", "local-1"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait(cond, what, deadline=60):
    t = time.time()
    while time.time() - t < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
_signing_keys = {}


def sign(key, secret, region, host, body, now=None):
    """SigV4 headers for a POST of `body` to `host`'s "/" for EC2. Written out instead of
    botocore's signer, which costs half a millisecond a request in this process: the pairs'
    client would otherwise be a third of what they measure. The signing key is kept per date."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/ec2/aws4_request"
    k = _signing_keys.get((secret, scope))
    if k is None:
        k = ("AWS4" + secret).encode()
        for part in (day, region, "ec2", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        _signing_keys[(secret, scope)] = k
    canonical = (f"POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{amz}\n\n"
                 f"content-type;host;x-amz-date\n{hashlib.sha256(body).hexdigest()}")
    to_sign = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": CONTENT_TYPE, "Host": host, "X-Amz-Date": amz,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"}


def check_signer():
    """`sign` must give what botocore gives for the same request at the same instant."""
    from unittest import mock
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    at = datetime.datetime(2026, 12, 4, 1, 2, 3, tzinfo=datetime.timezone.utc)
    body = urllib.parse.urlencode({"Action": "DescribeInstances", "Version": "2016-11-15", "Filter.1.Name": "tag:a b"})
    req = AWSRequest(method="POST", url="http://127.0.0.1:8443/", data=body, headers={"Content-Type": CONTENT_TYPE})
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY, SECRET), "ec2", REGION).add_auth(req)
    ours = sign(KEY, SECRET, REGION, "127.0.0.1:8443", body.encode(), at)
    assert ours["Authorization"] == req.headers["Authorization"], (ours["Authorization"], req.headers["Authorization"])


class Connection(http.client.HTTPConnection):
    """Sends a request's head and body in one write, as wrk and most clients do: http.client
    writes them apart, which costs the client a second send and the server a second read."""

    def _send_output(self, message_body=None, encode_chunked=False):
        if not isinstance(message_body, bytes) or encode_chunked:
            return super()._send_output(message_body, encode_chunked)
        self._buffer.extend((b"", b""))
        msg = b"\r\n".join(self._buffer) + message_body
        del self._buffer[:]
        self.send(msg)


class Endpoint:
    def __init__(self, name, port, region):
        self.name, self.port, self.region = name, port, region
        self.conn = Connection("127.0.0.1", port, timeout=60)
        self.key, self.secret = KEY, SECRET

    def signed(self, action, params):
        """The body and the signed headers of a call."""
        body = urllib.parse.urlencode({"Action": action, "Version": "2016-11-15", **params}).encode()
        return body, sign(self.key, self.secret, self.region, f"127.0.0.1:{self.port}", body)

    def call(self, action, params):
        body, headers = self.signed(action, params)
        try:
            self.conn.request("POST", "/", body=body, headers=headers)
            r = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the kept-alive connection while it sat idle (Corral does after
            # its idle timeout): connect again, as SDKs do, and send once more.
            self.conn.close()
            self.conn = Connection("127.0.0.1", self.port, timeout=60)
            self.conn.request("POST", "/", body=body, headers=headers)
            r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{self.name} {action}: {r.status} {data[:300]!r}")
        return data


def start_corral(tmp):
    exe = os.environ.get("CORRAL_BIN", os.path.join(ROOT, "target/release/corral"))
    env = dict(os.environ, CORRAL_ACCESS_KEY_ID=KEY, CORRAL_SECRET_ACCESS_KEY=SECRET, CORRAL_LOG="warn")
    p = subprocess.Popen([exe, "serve", "--hypervisor", "sim", "--listen", "127.0.0.1:0", "--state-dir", tmp,
                          "--images", "minimal"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ep = wait(lambda: os.path.exists(f"{tmp}/endpoint") and open(f"{tmp}/endpoint").read().split("\n")[0], "corral endpoint")
    port = int(ep.rsplit(":", 1)[1])
    e = Endpoint("corral", port, REGION)
    ami = wait(lambda: (re.findall(rb"<imageId>(ami-[0-9a-f]+)</imageId>", e.call("DescribeImages", {})) or [None])[0], "image")
    return p, e, ami.decode()


def start_moto():
    port = free_port()
    p = subprocess.Popen(["moto_server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    e = Endpoint("moto", port, "us-east-1")
    def up():
        try:
            return e.call("DescribeImages", {"Owner.1": "amazon"})
        except Exception:
            e.conn = Connection("127.0.0.1", port, timeout=60)
            return None
    body = wait(up, "moto")
    ami = re.findall(rb"<imageId>(ami-[0-9a-f]+)</imageId>", body)[0].decode()
    return p, e, ami


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bench(e, ami, n, describes):
    t = time.perf_counter()
    for _ in range(n):
        e.call("RunInstances", {"ImageId": ami, "MinCount": "1", "MaxCount": "1", "InstanceType": "t3.micro"})
    run_rps = n / (time.perf_counter() - t)
    lat = []
    for _ in range(describes):
        t = time.perf_counter()
        count, token = 0, None
        while True:
            params = {"MaxResults": "1000"}
            if token:
                params["NextToken"] = token
            body = e.call("DescribeInstances", params)
            count += body.count(b"<instanceId>")
            m = re.search(rb"<nextToken>([^<]+)</nextToken>", body)
            if not m:
                break
            token = m.group(1).decode()
        lat.append((time.perf_counter() - t) * 1000)
    return {"run_rps": run_rps, "p50": statistics.median(lat), "p99": pct(lat, 0.99), "count": count}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--describes", type=int, default=200)
    a = ap.parse_args()
    check_signer()
    tmp = tempfile.mkdtemp(prefix="corral-bench-")
    procs = []
    try:
        cp, ce, cami = start_corral(tmp); procs.append(cp)
        mp, me, mami = start_moto(); procs.append(mp)
        res = {}
        for e, ami in ((ce, cami), (me, mami)):
            res[e.name] = bench(e, ami, a.instances, a.describes)
            r = res[e.name]
            print(f"{e.name:7s} RunInstances {r['run_rps']:8.1f} req/s   DescribeInstances({r['count']}) "
                  f"p50 {r['p50']:8.2f} ms  p99 {r['p99']:8.2f} ms", flush=True)
        c, m = res["corral"], res["moto"]
        print(f"ratio corral/moto: RunInstances throughput x{c['run_rps']/m['run_rps']:.2f}, "
              f"DescribeInstances p50 x{c['p50']/m['p50']:.2f} p99 x{c['p99']/m['p99']:.2f} (latency: lower is better)")
    finally:
        for p in procs:
            p.kill(); p.wait()


if __name__ == "__main__":
    main()
