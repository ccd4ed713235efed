#!/usr/bin/env python3
"""Writes the sigv4 target's seed corpus: real request shapes signed (by this independent
SigV4 implementation, after AWS's documentation) for the target's fixed time and key, each
behind the target's 8 control bytes. Run from fuzz/: python3 seeds/sigv4_seeds.py"""
import hashlib, hmac, os, urllib.parse

AKID, SECRET, STAMP = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830T123600Z"
OUT = "corpus/sigv4"

def enc(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)

def canonical_query(q, presigned=False):
    pairs = []
    for p in q.split("&"):
        if not p:
            continue
        k, _, v = p.partition("=")
        k, v = urllib.parse.unquote(k), urllib.parse.unquote(v)
        if presigned and k == "X-Amz-Signature":
            continue
        pairs.append((enc(k), enc(v)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))

def canonical_uri(path):
    segs = []
    for s in path.split("/"):
        if s in ("", "."):
            continue
        if s == "..":
            if segs: segs.pop()
            continue
        segs.append(s)
    out = ("/" if path.startswith("/") else "") + "/".join(segs)
    if path.endswith("/") and segs: out += "/"
    return enc(out or "/", safe="-_.~/")

def key(region, service):
    k = ("AWS4" + SECRET).encode()
    for part in (STAMP[:8], region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k

def signature(method, path, query, headers, payload_hash, region, service, presigned=False):
    names = sorted({n.lower() for n, _ in headers})
    canon_headers = "".join(
        n + ":" + ",".join(" ".join(v.split()) for hn, v in headers if hn.lower() == n) + "\n" for n in names)
    creq = "\n".join([method, canonical_uri(path), canonical_query(query, presigned), canon_headers, ";".join(names), payload_hash])
    scope = f"{STAMP[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", STAMP, scope, hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(key(region, service), sts.encode(), hashlib.sha256).hexdigest(), ";".join(names), scope

def text(method, path, query, headers, body=b""):
    target = path + ("?" + query if query else "")
    head = f"{method} {target}\n" + "".join(f"{n}: {v}\n" for n, v in headers)
    return head.encode() + b"\n" + body

def header_signed(method, path, query, headers, body=b"", region="us-east-1", service="ec2"):
    headers = headers + [("X-Amz-Date", STAMP)]
    sig, names, scope = signature(method, path, query, headers, hashlib.sha256(body).hexdigest(), region, service)
    auth = f"AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={names}, Signature={sig}"
    return text(method, path, query, headers + [("Authorization", auth)], body)

def presigned(method, path, query, headers, expires=300, region="us-east-1", service="ec2"):
    names = ";".join(sorted({n.lower() for n, _ in headers}))
    scope = f"{STAMP[:8]}/{region}/{service}/aws4_request"
    q = (query + "&" if query else "") + "&".join(f"{k}={enc(v)}" for k, v in [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{AKID}/{scope}"), ("X-Amz-Date", STAMP),
        ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", names)])
    sig, _, _ = signature(method, path, q, headers, "UNSIGNED-PAYLOAD", region, service, presigned=True)
    return text(method, path, q + "&X-Amz-Signature=" + sig, headers)

def ctl(presign=False, wrong_secret=False, region=0, service=0, tamper=False, content_sha=None, offset=0,
        target=0, position=0, replacement=0, expires_units=1):
    c0 = presign | wrong_secret << 1 | region << 2 | service << 4 | tamper << 6 | (content_sha is not None) << 7
    c3 = target | (0x80 if content_sha else 0)
    return bytes([c0]) + offset.to_bytes(2, "little", signed=True) + bytes([c3]) + position.to_bytes(2, "little") + bytes([replacement, expires_units])

HOST = [("Host", "ec2.us-east-1.amazonaws.com")]
FORM = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")] + HOST
RUN = b"Action=RunInstances&Version=2016-11-15&ImageId=ami-0123456789abcdef0&MinCount=1&MaxCount=1&InstanceType=t3.micro"

seeds = {
    "signed_get": ctl() + header_signed("GET", "/", "Action=DescribeInstances&Version=2016-11-15", HOST),
    "signed_post_tamper_body": ctl(tamper=True, target=4, position=7, replacement=1) + header_signed("POST", "/", "", FORM, RUN),
    "signed_post_content_sha": ctl(content_sha=False, tamper=True, target=3) + header_signed("POST", "/", "", FORM + [("User-Agent", "aws-cli/2.15.0  Python/3.11   exe/x86_64")], RUN),
    "signed_sts": ctl(service=1) + header_signed("POST", "/", "", FORM, b"Action=GetCallerIdentity&Version=2011-06-15", service="sts"),
    "signed_path_dots": ctl(tamper=True, target=2, position=3) + header_signed("GET", "/a/./b/../c%20d//", "b=2&a=1&a=&c=%2F+x&d", HOST),
    "presigned_get": ctl(presign=True, expires_units=1) + presigned("GET", "/", "Action=DescribeRegions&Version=2016-11-15", HOST),
    "presigned_tamper_sig": ctl(presign=True, tamper=True, target=5, position=9, replacement=12) + presigned("GET", "/", "Action=DescribeRegions&Version=2016-11-15", HOST),
    "skewed_16_min": ctl(offset=-961) + header_signed("GET", "/", "Action=DescribeInstances&Version=2016-11-15", HOST),
    "other_region": ctl(region=2) + header_signed("GET", "/", "Action=DescribeInstances", HOST, region="eu-west-1"),
    "wrong_secret": ctl(wrong_secret=True) + text("GET", "/", "Action=DescribeInstances", HOST),
    "missing_parts": ctl() + text("GET", "/", "", HOST + [("X-Amz-Date", STAMP), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request")]),
    "duplicate_credential": ctl() + text("GET", "/", "", HOST + [("X-Amz-Date", STAMP), ("Authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, Credential=x, SignedHeaders=host, Signature=00")]),
    "bad_date_rfc1123": ctl() + text("GET", "/", "", HOST + [("Date", "Sun, 30 Aug 2015 12:36:00 GMT"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders=date;host, Signature=abc")]),
    "both_mechanisms": ctl() + text("GET", "/", "X-Amz-Algorithm=AWS4-HMAC-SHA256", HOST + [("Authorization", "AWS4-HMAC-SHA256 Credential=x")]),
    "presigned_bad_expires": ctl() + text("GET", "/", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=00", HOST),
    "unicode_headers": ctl(tamper=True, target=3, position=2, replacement=0x29) + header_signed("GET", "/\u00e9t\u00e9", "q=%E2%82%AC&r=%FF", HOST + [("X-Note", "caf\u00e9\t  au  lait")]),
    "unsigned_payload": ctl(content_sha=True) + text("POST", "/", "", FORM, b""),
}
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(len(seeds), "seeds in", OUT)
