"""A fake EC2 instance metadata service for corral-images' network test (not the real one).

Serves IMDSv2 (PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds, then the
X-aws-ec2-metadata-token header on GETs) and IMDSv1 GETs, for one instance, on
169.254.169.254:80 inside the test's network namespace. Every request is appended to the log
file as `METHOD PATH token=<yes|no|bad>`, so the test can check what the guest's init read.

usage: fake_imds.py LISTEN_ADDR INSTANCE_ID LOCAL_HOSTNAME PUBLIC_KEY_FILE USER_DATA_FILE LOG_FILE [v1-only]

With `v1-only` the token PUT answers 405, as a metadata service without IMDSv2 would.
"""
import http.server
import secrets
import sys

addr, instance_id, local_hostname, key_file, user_data_file, log_file = sys.argv[1:7]
v1_only = sys.argv[7:8] == ["v1-only"]
with open(key_file, "rb") as f:
    public_key = f.read()
with open(user_data_file, "rb") as f:
    user_data = f.read()
tokens = set()

paths = {
    "/latest/meta-data/instance-id": instance_id.encode(),
    "/latest/meta-data/local-hostname": local_hostname.encode(),
    "/latest/meta-data/hostname": local_hostname.encode(),
    "/latest/meta-data/public-keys/": b"0=cimg-key",
    "/latest/meta-data/public-keys": b"0=cimg-key",
    "/latest/meta-data/public-keys/0/openssh-key": public_key,
    "/latest/user-data": user_data,
}


def log(line):
    with open(log_file, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        log(f"PUT {self.path} ttl={ttl}")
        if self.path != "/latest/api/token":
            return self.reply(404)
        if v1_only:
            return self.reply(405)
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.reply(400)
        token = secrets.token_urlsafe(24)
        tokens.add(token)
        self.reply(200, token.encode())

    def do_GET(self):
        token = self.headers.get("X-aws-ec2-metadata-token")
        state = "no" if token is None else ("yes" if token in tokens else "bad")
        log(f"GET {self.path} token={state}")
        if state == "bad":
            return self.reply(401)
        body = paths.get(self.path)
        if body is None:
            return self.reply(404)
        self.reply(200, body)

    def log_message(self, *args):
        pass


http.server.HTTPServer((addr, 80), Handler).serve_forever()
