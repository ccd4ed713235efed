"""Runs tests/ansible/playbook.yml (amazon.aws, as bundled in the `ansible` PyPI package,
unmodified) against a `corral serve --hypervisor sim` of its own.

The server is started the way tests/conformance/conftest.py starts one, by
tests/support/corral_server.py: a temporary state directory, `--listen 127.0.0.1:0`,
`--images minimal`, the endpoint read from `<state-dir>/endpoint` and the credentials from
`corral credentials --env`. It is killed by its PID at the end. The playbook runs with those
credentials in its environment, with no Ansible configuration from the home directory or the
caller's environment, and under a deadline; a failed run fails the test with the playbook's
output and the tail of the server's log.

The binary is target/debug/corral (`cargo build -p corral-cli`), or CORRAL_BIN.
CORRAL_ANSIBLE_ARGS adds ansible-playbook arguments (e.g. -vvv); CORRAL_ANSIBLE_DEADLINE_S sets
the playbook's deadline (240 s; a run takes about 75-95 s on two busy cores, most of it Ansible
starting a Python with boto3 for each of some 50 module tasks, and fixed sleeps in
ec2_vpc_route_table and ec2_security_group).
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# tests/support: the `corral serve --hypervisor sim` this test starts (shared with tests/conformance).
sys.path.insert(0, str(HERE.parent / "support"))
from corral_server import CorralBinaryNotFound, CorralServer, CorralServerError  # noqa: E402

PLAYBOOK = HERE / "playbook.yml"
PLAYBOOK_DEADLINE_S = float(os.environ.get("CORRAL_ANSIBLE_DEADLINE_S", "240"))
OUTPUT_TAIL_CHARS = 20000


@pytest.fixture
def corral(tmp_path):
    server = CorralServer(tmp_path, env={"NO_COLOR": "1"})  # a plain log, for the tail a failure shows
    try:
        creds = server.start()
    except CorralBinaryNotFound as err:
        failure = (f"corral binary not found at {err.binary}: build it with "
                   "`cargo build -p corral-cli` or set CORRAL_BIN")
    except CorralServerError as err:
        failure = str(err)
    else:
        failure = None
    if failure is not None:  # failed outside the except: no chained traceback in the report
        pytest.fail(failure, pytrace=False)
    yield server, creds
    server.stop()


def _ansible_env(creds: dict, base: Path) -> dict:
    """The caller's environment without any ANSIBLE_* or AWS_* settings (so no configuration,
    collections path or profile of theirs is used), plus Corral's credentials and a private
    ANSIBLE_HOME and ANSIBLE_CONFIG."""
    home = base / "ansible-home"
    (home / "tmp").mkdir(parents=True)
    config = base / "ansible.cfg"
    config.write_text("[defaults]\n")  # empty: no ./ansible.cfg, ~/.ansible.cfg or /etc/ansible
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "AWS_", "BOTO_"))}
    env.update(creds)
    env.update({
        "AWS_REGION": creds["AWS_DEFAULT_REGION"],
        # No shared config or credentials files: only what the module_defaults pass.
        "AWS_CONFIG_FILE": str(base / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(base / "no-aws-credentials"),
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "tmp"),  # "remote" is this host: not ~/.ansible/tmp
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_PIPELINING": "True",  # one process per task, no module file copied and removed
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,  # the Python that has boto3
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _descendants(pid: int) -> list:
    """The processes under `pid` (read from /proc), at any depth."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """Kills ansible-playbook and everything under it by PID. Its workers call setsid, so they
    are not in its process group; they are found as its descendants before anything dies."""
    for victim in [pid, *_descendants(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _bundled_amazon_aws(env: dict) -> None:
    """The amazon.aws that Ansible resolves is the one the `ansible` package bundles."""
    try:
        import ansible_collections.amazon.aws as bundled  # the `ansible` PyPI package
    except ImportError:
        pytest.fail("the `ansible` package (with its bundled amazon.aws) is not installed: "
                    "python3 -m pip install ansible (scripts/install-deps.sh does)", pytrace=False)
    bundled_root = Path(list(bundled.__path__)[0]).resolve().parents[1]  # .../site-packages/ansible_collections
    out = subprocess.run(
        [sys.executable, "-m", "ansible", "galaxy", "collection", "list", "amazon.aws", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 0, f"ansible-galaxy collection list failed:\n{out.stdout}\n{out.stderr}"
    found = {path: cols for path, cols in json.loads(out.stdout).items() if "amazon.aws" in cols}
    assert [Path(p).resolve() for p in found] == [bundled_root], (
        f"amazon.aws should come only from the ansible package's bundle ({bundled_root}); found {found}"
    )


def test_playbook_builds_and_tears_down_a_vpc_deployment(corral, tmp_path):
    server, creds = corral
    env = _ansible_env(creds, tmp_path)
    _bundled_amazon_aws(env)
    extra = shlex.split(os.environ.get("CORRAL_ANSIBLE_ARGS", ""))  # e.g. -vvv
    cmd = [sys.executable, "-m", "ansible", "playbook", str(PLAYBOOK), *extra]
    log_path = tmp_path / "ansible-playbook.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path))
        try:
            rc = proc.wait(timeout=PLAYBOOK_DEADLINE_S)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait(timeout=15)
            rc, timed_out = proc.returncode, True
    elapsed = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    if timed_out or rc != 0:
        why = (f"ansible-playbook ran past its {PLAYBOOK_DEADLINE_S:.0f}s deadline" if timed_out
               else f"ansible-playbook exited with status {rc} after {elapsed:.1f}s")
        pytest.fail(
            f"{why}\n--- {log_path} (tail) ---\n{output[-OUTPUT_TAIL_CHARS:]}"
            f"\n--- {server.log_path} (tail) ---\n{server.log_tail()}",
            pytrace=False,
        )
    assert "failed=0" in output and "unreachable=0" in output, output[-OUTPUT_TAIL_CHARS:]
    print(f"playbook passed in {elapsed:.1f}s")
