"""A `corral serve --hypervisor sim` that a Python test suite starts for itself.

Used by tests/conformance/conftest.py and tests/ansible/test_playbook.py (each puts this folder
on sys.path). The server runs in `<base>/state` with `--listen 127.0.0.1:0 --images minimal`
and a seeded CORRAL_ACCOUNT_ID, its output goes to `<base>/corral-serve.log`, and it counts as
started once `<state-dir>/endpoint` names a URL and DescribeRegions answers there with the
credentials `corral credentials --env` prints. It is stopped by its PID: SIGTERM, then SIGKILL.

Nothing here knows about pytest: a failure raises CorralServerError (with the log's tail in its
message), and each suite turns that into an outcome of its own.

The binary is CORRAL_BIN, else target/debug/corral (`cargo build -p corral-cli`).
"""

import os
import random
import shlex
import signal
import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0  # generous: a cold debug build opens its store and registers images
STOP_TIMEOUT_S = 15.0
LOG_TAIL_CHARS = 4000
CREDENTIAL_NAMES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


class CorralServerError(Exception):
    """The server could not be started; the message ends with the tail of its log."""


class CorralBinaryNotFound(CorralServerError):
    """No executable at `binary` (CORRAL_BIN, or target/debug/corral)."""

    def __init__(self, binary: str):
        super().__init__(f"corral binary not found at {binary}")
        self.binary = binary


def parse_env_lines(text: str) -> dict:
    """`NAME=value` and `export NAME='value'` lines (as `corral credentials --env` prints) -> dict."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        if "=" not in line:
            continue
        name, value = line.split("=", 1)
        parts = shlex.split(value)
        env[name] = parts[0] if parts else ""
    return env


def random_account_id() -> str:
    return "".join(random.choice("0123456789") for _ in range(12))


class CorralServer:
    """A `corral serve --hypervisor sim` process owned by the caller.

    `account_id` seeds CORRAL_ACCOUNT_ID (a random 12-digit id when not given); `env` adds to the
    server's environment (the caller's own, otherwise).
    """

    def __init__(self, base: Path, account_id: str | None = None, env: dict | None = None):
        self.binary = os.environ.get("CORRAL_BIN", str(REPO_ROOT / "target" / "debug" / "corral"))
        self.base = Path(base)
        self.state_dir = self.base / "state"
        self.log_path = self.base / "corral-serve.log"
        self.account_id = account_id or random_account_id()
        self.extra_env = dict(env or {})
        self.credentials: dict | None = None  # the AWS_* values, once started
        self.proc = None
        self.log = None

    def binary_found(self) -> bool:
        return os.access(self.binary, os.X_OK)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> dict:
        """Starts the server and waits (at most `timeout_s`) until it answers; returns every
        variable `corral credentials --env` prints (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, ...), also kept as `self.credentials`."""
        if not self.binary_found():
            raise CorralBinaryNotFound(self.binary)
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.extra_env)
        env["CORRAL_ACCOUNT_ID"] = self.account_id
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                self.binary, "serve",
                "--hypervisor", "sim",
                "--listen", "127.0.0.1:0",
                "--state-dir", str(self.state_dir),
                "--images", "minimal",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(self.base),
        )
        deadline = time.monotonic() + timeout_s
        endpoint_file = self.state_dir / "endpoint"
        creds = None
        last_error = "endpoint file not written yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"corral serve exited with status {self.proc.returncode}")
            if creds is None and endpoint_file.exists():
                first_line = endpoint_file.read_text().splitlines()[:1]
                if first_line and first_line[0].startswith("http"):
                    creds = self._read_credentials()
            if creds is not None:
                try:
                    _ec2_client(creds).describe_regions()
                    self.credentials = creds
                    return creds
                except Exception as err:  # not answering yet
                    last_error = repr(err)
            time.sleep(0.05)
        self._fail(f"corral serve did not answer DescribeRegions within {timeout_s}s ({last_error})")

    def _read_credentials(self) -> dict:
        out = subprocess.run(
            [self.binary, "credentials", "--env", "--state-dir", str(self.state_dir)],
            capture_output=True, text=True, timeout=30,
        )
        if out.returncode != 0:
            self._fail(f"corral credentials failed: {out.stderr}")
        env = parse_env_lines(out.stdout)
        missing = [k for k in CREDENTIAL_NAMES if not env.get(k)]
        if missing:
            self._fail(f"corral credentials --env printed no {', '.join(missing)}:\n{out.stdout}")
        return env

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def _fail(self, why: str):
        self.stop()
        raise CorralServerError(f"{why}\n--- {self.log_path} (tail) ---\n{self.log_tail()}")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S):
        """SIGTERM by PID, then SIGKILL if it has not exited within `timeout_s`."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout_s)
        if self.log is not None and not self.log.closed:
            self.log.close()


def _ec2_client(creds: dict):
    # One attempt: the wait loop does the retrying.
    session = boto3.session.Session(
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        region_name=creds["AWS_DEFAULT_REGION"],
    )
    return session.client("ec2", endpoint_url=creds["AWS_ENDPOINT_URL"],
                          config=Config(retries={"mode": "standard", "max_attempts": 1}))
