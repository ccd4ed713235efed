#!/usr/bin/env python3
"""Signs one request with botocore and prints it as JSON, for corral-auth's cross-check test.

usage: botocore_sign.py header|presign METHOD URL BODY ACCESS_KEY SECRET REGION SERVICE [EXPIRES]

Prints {"method", "url", "headers": [[name, value], ...], "body"} with header names lowercased,
including the Host header the HTTP client would send. botocore signs at the current time; the
caller reads it back from X-Amz-Date.
"""
import json
import sys
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    mode, method, url, body, access_key, secret, region, service = sys.argv[1:9]
    headers = {"Host": urlsplit(url).netloc}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    request = AWSRequest(method=method, url=url, data=body.encode() if body else None, headers=headers)
    credentials = Credentials(access_key, secret)
    if mode == "header":
        SigV4Auth(credentials, service, region).add_auth(request)
    elif mode == "presign":
        SigV4QueryAuth(credentials, service, region, expires=int(sys.argv[9])).add_auth(request)
    else:
        sys.exit(f"unknown mode {mode!r}")
    prepared = request.prepare()
    print(json.dumps({
        "method": prepared.method,
        "url": prepared.url,
        "headers": [[name.lower(), value] for name, value in prepared.headers.items()],
        "body": body,
    }))


if __name__ == "__main__":
    main()
