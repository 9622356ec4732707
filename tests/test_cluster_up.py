"""`ray up` for real on loopback: examples/cluster-local.yaml with a head on 127.0.0.1 and a worker
on 127.0.0.2, `ray job submit` of a tiny sweep from "the laptop", its MLflow runs on the head's
tracking server, `ray down` (issue 15 §4). Slow (minutes; CI runs it).

Each node is an sshd of its own on its address, port 22 (the machine's sshd binary, started here
with a throwaway host key and a throwaway client key authorized for the current user), in its
own PID and mount namespaces: the config's `ray stop` then stops that node's Ray only (it would
otherwise kill every Ray process on the machine, other tests' included); the node gets a private
/tmp (Ray's session, the local provider's state, SSH control sockets) and its own home directory
mounted over the user's (so ~/us8k-ray, ~/us8k-state, ~/.bashrc and ~/ray_bootstrap_key.pem land
there, never in the user's real home; the part of the real home this Python lives in, e.g. a
pyenv, is mounted back). "The laptop" (`ray up`, `ray job submit`) has its own HOME too, with the
Ray token `ray get-auth-token --generate` made there.

What the copy of the config changes, and why: addresses (127.0.0.1/127.0.0.2, the SSH user and
key), free ports instead of Ray's and MLflow's defaults (the machine may run other Rays),
`--node-ip-address` for the worker (two nodes on one machine), and no `pip install` step: the
nodes use this interpreter's environment (~/us8k-venv links to it; ray[default] comes with the
test extra) and import the project from the copy `ray up` synced (PYTHONPATH=~/us8k-ray). Needs
root (the node sshds), `unshare`, sshd, ssh, ssh-keygen, rsync and port 22 free on both
addresses; skipped, saying which is missing, otherwise.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from orchestration.headless_ray import free_local_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "examples" / "cluster-local.yaml"
HEAD, WORKER = "127.0.0.1", "127.0.0.2"
HANG_GUARD_S = 1800  # only against hangs: never a speed expectation
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
USER_HOME = os.path.expanduser(f"~{getpass.getuser()}")  # the passwd entry's, not $HOME
FOLDS = "1,2"


def _missing() -> str | None:
    if sys.platform != "linux":
        return "Linux only (PID namespaces)"
    if os.geteuid() != 0:
        return "needs root: the per-node sshd switches to the user (CI runs as root)"
    import importlib.util

    if importlib.util.find_spec("aiohttp_cors") is None:
        return "ray[default] not installed: no dashboard HTTP server, no Jobs API (the test extra installs it)"
    for tool in ("ssh", "ssh-keygen", "rsync", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (.ci/run installs openssh-server, openssh-client and rsync)"
    if not os.access(SSHD, os.X_OK):
        return "sshd not installed (.ci/run installs openssh-server)"
    if _listening(22):
        return f"port 22 is taken ({', '.join(sorted(_listening(22)))}): the nodes' sshds need {HEAD}:22 and {WORKER}:22"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create PID namespaces here: {probe.stderr.strip()}"
    return None


def _listening(port: int) -> set[str]:
    """Addresses a TCP socket listens on at ``port`` (from /proc/net/tcp and tcp6; shared netns)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state != "0A" or int(hex_port, 16) != port:
                    continue
                if width == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


@dataclass
class Ports:
    gcs: int
    dashboard: int
    client: int
    mlflow: int
    head_agent: int
    worker_agent: int


class Node:
    """One machine: an sshd on ``ip``:22 in its own PID and mount namespaces, where a private /tmp
    and the node's own home directory are mounted (over the user's home: sshd, ssh and Ray all
    find ``~`` there)."""

    def __init__(self, work: Path, ip: str, authorized: Path, host_key: Path, user: str) -> None:
        self.ip = ip
        self.home = work / f"home-{ip}"
        self.home.mkdir()
        # The venv a real node's setup would create: this interpreter's environment.
        (self.home / "us8k-venv").symlink_to(Path(sys.prefix))
        config = work / f"sshd-{ip}.conf"
        config.write_text("\n".join([
            "Port 22", f"ListenAddress {ip}", f"HostKey {host_key}", f"AuthorizedKeysFile {authorized}",
            f"PidFile {work / f'sshd-{ip}.pid'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
            f"AllowUsers {user}", "LogLevel ERROR",
            # The project as `ray up` synced it (a real node's setup pip-installs that copy).
            f"SetEnv PYTHONPATH={USER_HOME}/us8k-ray RAY_USAGE_STATS_ENABLED=0",
        ]) + "\n")
        # The node's private /tmp hides the real one; this environment may live there (a
        # checkout under /tmp with its .venv): those entries are mounted back.
        real_tmp = work / f"real-tmp-{ip}"
        real_tmp.mkdir()
        mounts = [f"mount --bind /tmp {real_tmp}", "mount -t tmpfs -o mode=1777 tmpfs /tmp",
                  *(f"mkdir -p /tmp/{e} && mount --bind {real_tmp}/{e} /tmp/{e}" for e in _entries_needed("/tmp")),
                  f"mkdir /tmp/.real-home && mount --bind {USER_HOME} /tmp/.real-home",
                  f"mount --bind {self.home} {USER_HOME}"]
        for entry in _entries_needed(USER_HOME):  # e.g. a pyenv interpreter under the real home
            mounts.append(f"mkdir -p {USER_HOME}/{entry} && mount --bind /tmp/.real-home/{entry} {USER_HOME}/{entry}")
        self.log = (work / f"sshd-{ip}.log").open("w")
        script = " && ".join([*mounts, f"exec {SSHD} -D -e -f {config}"])
        self.process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while ip not in _listening(22):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd on {ip}:22 did not start: {Path(self.log.name).read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Ends the namespace: every process of this node (Ray, MLflow) goes with its init."""
        if self.process.poll() is None:
            self.process.kill()  # --kill-child (a parent-death signal): the namespace's init gets SIGKILL
            self.process.wait(timeout=60)
        self.log.close()


def _entries_needed(folder: str) -> set[str]:
    """Top-level entries of ``folder`` (the user's home, /tmp) that this environment lives in
    (kept visible on the nodes, where another directory is mounted over it)."""
    needed = set()
    for path in (sys.base_prefix, sys.prefix, os.path.realpath(sys.executable), str(ROOT)):
        relative = os.path.relpath(os.path.realpath(path), os.path.realpath(folder))
        if not relative.startswith(".."):
            needed.add(relative.split(os.sep)[0])
    return needed


def _cluster_config(work: Path, ports: Ports, key: Path, user: str) -> Path:
    """A copy of examples/cluster-local.yaml for the loopback nodes (see the module docstring)."""
    text = LOCAL.read_text()
    text = text.replace("/mnt/CHANGE-ME-shared/ray-results", str(work / "shared" / "ray-results"))
    text = text.replace("US8K_MLFLOW_PORT=5000", f"US8K_MLFLOW_PORT={ports.mlflow}")
    config = yaml.safe_load(text)
    config["cluster_name"] = f"us8k-loopback-{uuid.uuid4().hex[:8]}"
    config["provider"].update(head_ip=HEAD, worker_ips=[WORKER])
    config["auth"] = {"ssh_user": user, "ssh_private_key": str(key)}
    installs = [c for c in config["setup_commands"] if "pip install" in c]
    assert len(installs) == 1, "the copy drops exactly the install step"
    config["setup_commands"] = [c for c in config["setup_commands"] if c not in installs]
    common = "--min-worker-port=0 --max-worker-port=0"
    head = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
    assert len(head) == 1 and "--port=6379" in head[0]
    config["head_start_ray_commands"] = [
        c.replace("--port=6379", f"--port={ports.gcs} --dashboard-port={ports.dashboard} "
                  f"--ray-client-server-port={ports.client} --dashboard-agent-listen-port={ports.head_agent} {common}")
        for c in config["head_start_ray_commands"]
    ]
    worker = [c for c in config["worker_start_ray_commands"] if "ray start" in c]
    assert worker == ["ray start --address=$RAY_HEAD_IP:6379 --disable-usage-stats"]
    config["worker_start_ray_commands"] = [
        c.replace("$RAY_HEAD_IP:6379", f"$RAY_HEAD_IP:{ports.gcs} --node-ip-address={WORKER} "
                  f"--dashboard-agent-listen-port={ports.worker_agent} {common}")
        for c in config["worker_start_ray_commands"]
    ]
    path = work / "cluster-loopback.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _run(args: list[str], env: dict[str, str], timeout: float = HANG_GUARD_S, check: bool = True):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args[:4])} ... exited {result.returncode}:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return result


RAY_START_DEADLINE = "The current node timed out during startup"


def _ray_up(ray: str, config: Path, env: dict[str, str], attempts: int = 3) -> None:
    """`ray up -y`. Ray's `ray start` gives its raylet a fixed 30 s to register with GCS
    (ray/_private/node.py); an overloaded machine can miss that, so that failure, and only that
    one, gets `ray up` again (which restarts Ray on the head)."""
    for attempt in range(1, attempts + 1):
        result = _run([ray, "up", "-y", "--no-config-cache", str(config)], env, check=False)
        if result.returncode == 0:
            return
        if RAY_START_DEADLINE not in result.stdout + result.stderr or attempt == attempts:
            pytest.fail(f"ray up exited {result.returncode}:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")


@pytest.fixture
def loopback(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    # Not under /tmp (each node mounts its own) and short (Ray's socket paths).
    work = Path(tempfile.mkdtemp(prefix="us8k-up-", dir="/var/tmp"))
    work.chmod(0o755)
    user = getpass.getuser()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"us8k-loopback-{name}",
                        "-f", str(work / name)], check=True)
    authorized = work / "authorized_keys"
    shutil.copy(work / "client_key.pub", authorized)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    ports = Ports(*(free_local_port() for _ in range(6)))
    nodes = []
    try:
        for ip in (HEAD, WORKER):
            nodes.append(Node(work, ip, authorized, work / "host_key", user))
        yield work, ports, nodes, _cluster_config(work, ports, work / "client_key", user)
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_ray_up_job_submit_and_ray_down_on_loopback(loopback, tiny_dataset_root):
    from mlflow.tracking import MlflowClient

    work, ports, (head, worker), config = loopback
    laptop = work / "laptop"
    laptop.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "US8K_"))},
           "HOME": str(laptop), "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(Path(sys.executable).parent / "ray")
    # The documented first step: the cluster's token, in the laptop's ~/.ray/auth_token.
    _run([ray, "get-auth-token", "--generate"], env)
    token = (laptop / ".ray" / "auth_token").read_text().strip()
    assert token
    dashboard = f"http://127.0.0.1:{ports.dashboard}"
    try:
        _ray_up(ray, config, env)
        assert (head.home / ".ray" / "auth_token").read_text().strip() == token  # file_mounts
        # The worker joins through the head's autoscaler; wait for its CPUs (the head has none).
        wait = ("python -c 'import time, ray; ray.init(); cpus = lambda: ray.cluster_resources().get(\"CPU\", 0); "
                "any(time.sleep(1) for _ in iter(lambda: cpus() >= 1, True)); print(ray.cluster_resources())'")
        _run([ray, "exec", str(config), wait], env)
        assert (worker.home / ".ray" / "auth_token").read_text().strip() == token

        # Security, for real: dashboard/Jobs API and MLflow on loopback only; no token, no entry.
        assert _listening(ports.dashboard) == {"127.0.0.1"}
        assert _listening(ports.mlflow) == {"127.0.0.1"}
        anonymous = _run([ray, "job", "list", "--address", dashboard], env, check=False)
        assert anonymous.returncode != 0
        assert "missing authentication token" in (anonymous.stdout + anonymous.stderr).lower()
        wrong = _run([ray, "job", "list", "--address", dashboard], {**env, "RAY_AUTH_MODE": "token",
                     "RAY_AUTH_TOKEN": "0" * len(token)}, check=False)
        assert wrong.returncode != 0
        assert "invalid authentication token" in (wrong.stdout + wrong.stderr).lower()

        # A small set copied straight to the head (the README's way for small sets), then the job:
        # no --data-dir, --tracking-uri, --storage-path or --cache-dir (the cluster env has them).
        _run([ray, "rsync-up", str(config), f"{tiny_dataset_root}/", "~/us8k-state/data/UrbanSound8K/"], env)
        assert (head.home / "us8k-state" / "data" / "UrbanSound8K" / "metadata").is_dir()
        sweep = ["python", "-m", "orchestration.cv_sweep", "--folds", FOLDS, "--search-space", '{"dropout1": [0.1]}',
                 "--epochs", "1", "--no-refit", "--name", "loopback", "--set", "train.filters=[8,8,16,16]",
                 "--set", "train.batch_size=32"]
        job = _run([ray, "job", "submit", "--address", dashboard, "--submission-id", "loopback-sweep", "--", *sweep],
                   {**env, "RAY_AUTH_MODE": "token"})
        status = _run([ray, "job", "status", "--address", dashboard, "loopback-sweep"], {**env, "RAY_AUTH_MODE": "token"})
        assert "job 'loopback-sweep' succeeded" in (status.stdout + status.stderr).lower(), job.stdout[-5000:]

        # Its runs, on the head's tracking server (what the cluster env points the sweep at).
        client = MlflowClient(f"http://127.0.0.1:{ports.mlflow}")
        experiment = client.get_experiment_by_name("us8k-cv")
        runs = client.search_runs([experiment.experiment_id], "tags.`us8k.sweep_id` = 'loopback'", max_results=50)
        kinds = sorted(r.data.tags["us8k.kind"] for r in runs)
        assert kinds == ["config", "fold", "fold", "sweep"], kinds
        assert all(r.info.status == "FINISHED" for r in runs)
        folds = [r for r in runs if r.data.tags["us8k.kind"] == "fold"]
        assert sorted(r.data.tags["us8k.fold"] for r in folds) == ["1", "2"]
        assert all("test_accuracy" in r.data.metrics for r in folds)
        assert any((head.home / "us8k-state" / "mlflow" / "artifacts").rglob("model.keras"))
        # Trained on the worker node: Tune's reports carry the node's IP.
        results = list((work / "shared" / "ray-results" / "loopback").glob("*/result.json"))
        node_ips = {json.loads(line)["node_ip"] for path in results for line in path.read_text().splitlines()}
        assert len(results) == 2 and node_ips == {WORKER}, node_ips
    finally:
        down = _run([ray, "down", "-y", str(config)], env, check=False)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert not _listening(ports.gcs) and not _listening(ports.dashboard)  # Ray stopped on the head
