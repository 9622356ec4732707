"""Cluster launcher configs: ``cluster.yaml`` (AWS) and ``examples/cluster-local.yaml`` (own machines).

Offline: no cloud call, no boto3. Before launching anything ``ray up`` runs
(``ray.autoscaler._private.commands._bootstrap_config``): ``prepare_config`` (defaults, node types,
Docker checks), the provider's ``fillout_available_node_types_resources`` (AWS: an EC2 API call),
``validate_config`` (Ray's JSON schema plus cross-field checks) and the provider's
``bootstrap_config`` (AWS: IAM roles, key pairs, subnets, security groups). For AWS these tests run
the two offline steps, which is why the GPU node types must declare their resources; the local
provider's steps are all offline, so that config goes through the whole ``_bootstrap_config``.

The shell commands the configs run on the nodes are executed here too, in a temporary HOME and
wrapped exactly as Ray wraps them (a login shell that sources ~/.bashrc; RAY_HEAD_IP exported on
workers; ``~/`` expanded for Docker), so a quoting or ordering mistake fails here, not on a cluster.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AWS = ROOT / "cluster.yaml"
LOCAL = ROOT / "examples" / "cluster-local.yaml"
CONFIGS = [AWS, LOCAL]
WORKER_HEAD_IP = "10.1.2.3"  # what Ray exports as RAY_HEAD_IP on a worker in these tests
ENV_FILE = "us8k-cluster.env"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def prepared(path: Path) -> dict:
    """The config after Ray's own defaults filling, as `ray up` sees it before the provider."""
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(copy.deepcopy(load(path)))


def uses_docker(config: dict) -> bool:
    return bool(config.get("docker", {}).get("image"))


def env_commands(commands: list[str]) -> list[str]:
    """The setup commands that write ~/us8k-cluster.env and hook it into ~/.bashrc."""
    return [c for c in commands if ENV_FILE in c]


def mlflow_commands(config: dict) -> list[str]:
    return [c for c in config["head_start_ray_commands"] if "mlflow" in c]


def seeded_home(tmp_path: Path) -> Path:
    """A HOME whose ~/.bashrc puts this interpreter's bin first, like the venv/image does on a node."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    return home


def run_on_node(
    cmd: str, home: Path, *, head_ip: str | None = None, docker: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run one config command the way Ray's command runners run it on a node."""
    from ray.autoscaler._private.command_runner import DockerCommandRunner, _with_interactive
    from ray.autoscaler._private.util import with_head_node_ip

    if head_ip is not None:
        cmd = with_head_node_ip([cmd], head_ip)[0]
    if docker:
        cmd = DockerCommandRunner._docker_expand_user(
            SimpleNamespace(home_dir=str(home)), cmd, any_char=True
        )
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    return subprocess.run(
        ["bash", "-c", " ".join(_with_interactive(cmd))],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,  # background processes it starts get their own process group
    )


def node_env(home: Path, *, docker: bool = False) -> dict[str, str]:
    """The US8K_*, MLFLOW_* and RAY_AUTH* variables a command on the node sees."""
    result = run_on_node("env", home, docker=docker)
    assert result.returncode == 0, result.stderr
    pairs = (line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.startswith(("US8K_", "MLFLOW_", "RAY_AUTH"))}


def set_up_node_env(
    config: dict, home: Path, *, head_ip: str | None, port: int | None = None
) -> None:
    kind = "worker_setup_commands" if head_ip else "head_setup_commands"
    for cmd in env_commands(config[kind]):
        if port is not None:
            cmd = cmd.replace("US8K_MLFLOW_PORT=5000", f"US8K_MLFLOW_PORT={port}")
        result = run_on_node(cmd, home, head_ip=head_ip, docker=uses_docker(config))
        assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"


# --- Ray's own validation -------------------------------------------------------------------


def test_aws_config_passes_ray_prepare_and_schema_validation():
    from ray.autoscaler._private.util import validate_config

    validate_config(prepared(AWS))


def test_ray_validation_rejects_a_broken_config():
    """Guards the guard: the validator used above does reject a config Ray cannot launch."""
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    config = prepared(AWS)
    config["available_node_types"]["gpu_1x"]["resources"] = {"GPU": 0.5}  # Ray wants integers
    with pytest.raises(jsonschema.ValidationError):
        validate_config(config)


def test_local_config_passes_rays_whole_pre_launch_bootstrap():
    from ray.autoscaler._private.commands import _bootstrap_config

    config = _bootstrap_config(load(LOCAL), no_config_cache=True)
    assert config["provider"]["type"] == "local"
    assert config["head_node_type"] in config["available_node_types"]


# --- layout: CPU head, GPU workers ----------------------------------------------------------


def test_aws_head_gets_no_cpu_and_no_gpu():
    config = prepared(AWS)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("CPU") == 0
    assert head["resources"].get("GPU", 0) == 0
    assert head["max_workers"] == 0


def test_local_head_starts_ray_without_cpus():
    starts = [c for c in load(LOCAL)["head_start_ray_commands"] if "ray start --head" in c]
    assert len(starts) == 1
    assert "--num-cpus=0" in starts[0].split()


def test_local_head_runs_the_autoscaler_that_starts_local_workers():
    """Ray 2.60's default autoscaler under `ray up` (v2) never launches a local-provider cluster's
    workers (seen by tests/test_cluster_up.py); the head's `ray start` asks for v1."""
    (start,) = [c for c in load(LOCAL)["head_start_ray_commands"] if "ray start --head" in c]
    assert start.startswith("RAY_enable_autoscaler_v2=0 ray start --head"), start


def test_aws_has_two_autoscaling_gpu_worker_types():
    config = prepared(AWS)
    workers = {
        k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]
    }
    gpus = {name: t["resources"].get("GPU", 0) for name, t in workers.items()}
    assert len([g for g in gpus.values() if g >= 1]) >= 2, gpus
    assert len(set(gpus.values())) >= 2, "the GPU node types should differ in size"
    for name, node_type in workers.items():
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"], name
        assert node_type["resources"]["CPU"] >= 1, name
        assert "--gpus all" in node_type["docker"]["worker_run_options"], name
        assert "IamInstanceProfile" in node_type["node_config"], f"{name} must reach the S3 storage"
    assert config["max_workers"] >= sum(t["min_workers"] for t in workers.values())
    assert config["idle_timeout_minutes"] > 0


def test_image_matches_installed_ray_and_python_311():
    import ray

    image = load(AWS)["docker"]["image"]
    match = re.fullmatch(
        r"rayproject/ray:(?P<ray>[\d.]+)-py(?P<py>\d+)-(?P<platform>gpu|cu\d+)", image
    )
    assert match, f"{image} is not an official rayproject/ray GPU tag"
    assert match["ray"] == ray.__version__
    assert match["py"] == "311"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_node_gets_the_project_with_the_gpu_extra(path):
    raw, config = load(path), prepared(path)
    assert raw["file_mounts"]["~/us8k-ray"] == "."
    assert ".gitignore" in raw["rsync_filter"]
    assert "**/.git" in raw["rsync_exclude"]
    install = re.compile(r'pip install .*-e "\$HOME/us8k-ray\[gpu\]"')
    for kind in ("head_setup_commands", "worker_setup_commands"):
        assert any(install.search(c) for c in config[kind]), kind


# --- MLflow server, tracking URI, storage ---------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_mlflow_server_binds_the_head_loopback_only(path):
    """Only the driver, on the head, logs to MLflow: the server is on 127.0.0.1, reached from
    elsewhere through SSH port forwarding, and answers loopback host names only."""
    config = load(path)
    servers = [c for c in mlflow_commands(config) if "mlflow server" in c]
    assert len(servers) == 1
    server = servers[0]
    assert re.search(r"--host 127\.0\.0\.1 ", server), server
    assert re.search(r'--allowed-hosts "localhost,localhost:\*,127\.0\.0\.1,127\.0\.0\.1:\*"', server)
    for flag in ("--backend-store-uri", "--serve-artifacts", "--artifacts-destination"):
        assert flag in server, flag
    for cmd in mlflow_commands(config):
        assert "US8K_HEAD_IP" not in cmd and "0.0.0.0" not in cmd
        assert "app-name" not in cmd  # one safe way in (loopback + SSH), not a second one
    for cmd in config["head_start_ray_commands"]:
        assert "0.0.0.0" not in cmd
    assert mlflow_commands(config) == mlflow_commands(load(AWS)), (
        "keep both configs' MLflow commands identical"
    )


def test_aws_settings_point_storage_and_artifacts_at_s3_in_one_place():
    text = AWS.read_text()
    settings = load(AWS)["metadata"]["cluster_env"]
    assert text.count("US8K_STORAGE_PATH=") == 1
    assert re.search(r"^export US8K_STORAGE_PATH=s3://\$US8K_BUCKET/\S+$", settings, re.M)
    assert re.search(r"^export US8K_MLFLOW_ARTIFACTS=s3://\$US8K_BUCKET/\S+$", settings, re.M)
    assert settings in load(AWS)["setup_commands"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_workers_see_tracking_uri_and_storage_path_from_their_setup(path, tmp_path):
    config, home = prepared(path), seeded_home(tmp_path)
    for _ in range(2):  # `ray up` again must not stack ~/.bashrc hooks
        set_up_node_env(config, home, head_ip=WORKER_HEAD_IP)
    env = node_env(home, docker=uses_docker(config))
    assert env["US8K_HEAD_IP"] == WORKER_HEAD_IP
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"  # the head's loopback: not for workers
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["US8K_STORAGE_PATH"]
    if path == AWS:
        assert env["US8K_STORAGE_PATH"].startswith("s3://")
    assert (home / ".bashrc").read_text().count(ENV_FILE) == 1


def test_head_knows_its_ray_node_ip_and_logs_to_mlflow_on_loopback(tmp_path):
    import ray.util

    config, home = prepared(AWS), seeded_home(tmp_path)
    set_up_node_env(config, home, head_ip=None)
    env = node_env(home, docker=True)
    head_ip = ray.util.get_node_ip_address()
    assert env["US8K_HEAD_IP"] == head_ip != "0.0.0.0"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["US8K_CACHE_DIR"].startswith(env["US8K_STATE"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _refused(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) != 0


def _kill_group(pid_file: Path) -> None:
    """Clean up after a failed test: the server's process group (a session of its own)."""
    if not pid_file.exists():
        return
    with contextlib.suppress(ProcessLookupError):
        group = os.getpgid(int(pid_file.read_text()))
        if group != os.getpgid(0):
            os.killpg(group, signal.SIGKILL)


@pytest.mark.slow  # an MLflow server start: 10-35 s depending on load
def test_mlflow_server_starts_on_loopback_accepts_runs_and_stops(tmp_path):
    """The head's real MLflow commands (local example: no S3), on a free port."""
    from mlflow.tracking import MlflowClient

    config, home, port = prepared(LOCAL), seeded_home(tmp_path), _free_port()
    set_up_node_env(config, home, head_ip=None, port=port)
    stop, start = mlflow_commands(config)
    env = node_env(home)
    pid_file = Path(env["US8K_STATE"]) / "mlflow" / "server.pid"
    try:
        result = run_on_node(start, home, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        run = client.create_run(client.create_experiment("cluster-config-check"))
        client.log_metric(run.info.run_id, "fold_accuracy", 0.5)
        assert client.get_run(run.info.run_id).data.metrics == {"fold_accuracy": 0.5}
        foreign = urllib.request.Request(
            f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1",
            headers={"Host": "attacker.example"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(foreign, timeout=10)
        assert refused.value.code == 403
        if not env["US8K_HEAD_IP"].startswith("127."):
            assert _refused(env["US8K_HEAD_IP"], port), "the server must listen on loopback only"
        assert run_on_node(stop, home).returncode == 0
        assert _refused("127.0.0.1", port)
        assert not pid_file.exists()
    finally:
        _kill_group(pid_file)


# --- security: Ray token, ports, firewall, S3 access -----------------------------------------

TOKEN = "~/.ray/auth_token"
SG_SCRIPT = ROOT / "examples" / "aws-security-group.sh"


def token_guards(config: dict) -> list[str]:
    return [c for c in config["setup_commands"] if "ray get-auth-token" in c]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_ray_token_auth_is_on_and_the_token_comes_from_outside_the_repo(path):
    """`ray start` turns Ray's token authentication on only with RAY_AUTH_MODE=token (Ray 2.60
    turns it on by itself only for clusters that ray.init() starts); the token is the user's
    ~/.ray/auth_token, copied to every node by file_mounts, never a value in the file."""
    raw, text = load(path), path.read_text()
    settings = raw["metadata"]["cluster_env"]
    assert re.findall(r"^export RAY_AUTH_MODE=(\S+)$", settings, re.M) == ["token"]
    assert "RAY_AUTH_MODE=disabled" not in text
    assert raw["file_mounts"][TOKEN] == TOKEN
    assert not re.search(r"RAY_AUTH_TOKEN(_PATH)?=", text), "the token lives in ~/.ray/auth_token only"
    assert len(token_guards(raw)) == 1


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_node_refuses_to_set_up_without_the_token_and_locks_it(path, tmp_path):
    config = prepared(path)
    for kind in ("head_setup_commands", "worker_setup_commands"):
        assert token_guards(load(path))[0] in config[kind], kind
    (guard,) = token_guards(load(path))
    home = seeded_home(tmp_path)
    refused = run_on_node(guard, home, docker=uses_docker(config))
    assert refused.returncode != 0 and "ray get-auth-token --generate" in refused.stdout
    token = home / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("")  # empty: as good as none
    assert run_on_node(guard, home, docker=uses_docker(config)).returncode != 0
    token.write_text("0123456789abcdef\n")
    token.chmod(0o644)
    assert run_on_node(guard, home, docker=uses_docker(config)).returncode == 0
    assert token.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_ray_ports_stay_private(path):
    """The dashboard and Jobs API on the head's loopback; nothing asks Ray for more than its
    defaults (GCS and the raylets listen on every interface in Ray 2.60, which has no flag to
    narrow that: on EC2 the security group is what keeps them in the cluster)."""
    config = load(path)
    heads = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
    assert len(heads) == 1 and "--dashboard-host=127.0.0.1" in heads[0].split()
    commands = [c for kind in ("head_start_ray_commands", "worker_start_ray_commands") for c in config[kind]]
    for cmd in commands:
        assert not re.search(r"0\.0\.0\.0|::/0|\[::\]|--include-dashboard=true", cmd), cmd


def test_aws_every_node_type_uses_the_one_restricted_security_group():
    """Ray's own security group opens SSH to 0.0.0.0/0 (ray.autoscaler's AWS bootstrap,
    `_create_default_ssh_inbound_rules`); with SecurityGroupIds on every node type Ray creates none."""
    raw, config = load(AWS), prepared(AWS)
    group = raw["metadata"]["security_group"]
    assert group.startswith("sg-")
    for name, node_type in config["available_node_types"].items():
        assert node_type["node_config"].get("SecurityGroupIds") == [group], name
    assert "security_group" not in config["provider"]  # extra rules for Ray's own group: none


def _dry_run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SG_SCRIPT), "--dry-run", *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **(env or {})}, timeout=60, check=False)


def _aws_calls(stderr: str) -> list[list[str]]:
    import shlex

    return [shlex.split(line)[3:] for line in stderr.splitlines() if line.startswith("aws --region ")]


def test_security_group_admits_ssh_from_one_cidr_and_the_cluster_from_itself():
    result = _dry_run("eu-west-1", "203.0.113.7/32", env={"US8K_VPC_ID": "vpc-0abc"})
    assert result.returncode == 0, result.stderr
    group = result.stdout.strip()
    calls = _aws_calls(result.stderr)
    create, *ingress = calls
    assert create[:2] == ["ec2", "create-security-group"] and create[create.index("--vpc-id") + 1] == "vpc-0abc"
    rules = sorted(c[c.index("--ip-permissions") + 1] for c in ingress)
    assert all(c[:2] == ["ec2", "authorize-security-group-ingress"] for c in ingress)
    assert all(c[c.index("--group-id") + 1] == group for c in ingress)
    assert rules == [
        f"IpProtocol=-1,UserIdGroupPairs=[{{GroupId={group},Description=between-cluster-nodes}}]",
        "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=203.0.113.7/32,Description=ssh}]",
    ]
    assert not any("egress" in " ".join(c) for c in calls)
    # Without US8K_VPC_ID: the region's default VPC, the one `ray up` uses.
    looked_up = _aws_calls(_dry_run("eu-west-1", "198.51.100.0/24").stderr)
    assert looked_up[0][:2] == ["ec2", "describe-vpcs"] and "Name=isDefault,Values=true" in looked_up[0]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "10.0.0.0/8", "203.0.113.7", "203.0.113.300/32", "::/0", "2001:db8::/32"])
def test_security_group_refuses_an_open_or_malformed_ssh_cidr_before_any_aws_call(cidr):
    result = _dry_run("eu-west-1", cidr)
    assert result.returncode == 2
    assert cidr in result.stderr and not _aws_calls(result.stderr)


def test_aws_s3_through_instance_profiles_never_keys():
    """Workers reach S3 (checkpoints) with an instance profile; the head with the one `ray up`
    attaches (ray-autoscaler-v1); MLflow writes artifacts to S3 from the head (--serve-artifacts),
    so no node or laptop needs keys for them."""
    config, text = prepared(AWS), AWS.read_text()
    for name, node_type in config["available_node_types"].items():
        if name != config["head_node_type"]:
            assert "Arn" in node_type["node_config"]["IamInstanceProfile"], name
    assert not re.search(r"(?i)aws_access_key_id|aws_session_token|aws configure", text)
    (server,) = [c for c in mlflow_commands(load(AWS)) if "mlflow server" in c]
    assert "--serve-artifacts" in server
    assert re.search(r"^export US8K_MLFLOW_ARTIFACTS=s3://", load(AWS)["metadata"]["cluster_env"], re.M)


# --- what must not be committed, what must be edited ----------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret key setting": r"(?i)aws_secret_access_key|secret_access_key\s*[:=]",
    "40-char secret-looking token": r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    "password in a URL": r"://[^/\s:@]+:[^/\s@]+@",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_no_secrets_committed(path):
    text = path.read_text()
    found = {name: m.group(0) for name, rx in SECRET_PATTERNS.items() if (m := re.search(rx, text))}
    assert not found, found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_placeholders_are_values_and_the_head_refuses_to_start_with_them(path, tmp_path):
    for line in path.read_text().splitlines():
        if "CHANGE-ME" in line:
            assert not line.lstrip().startswith("#"), f"placeholder in a comment: {line}"
    config = prepared(path)
    guards = [c for c in config["head_setup_commands"] if "CHANGE[-]ME" in c]
    assert len(guards) == 1
    home = seeded_home(tmp_path)
    bootstrap = home / "ray_bootstrap_config.yaml"  # what `ray up` uploads to the head
    bootstrap.write_text(json.dumps(config))
    refused = run_on_node(guards[0], home)
    assert refused.returncode != 0
    assert "CHANGE-ME" in refused.stdout
    bootstrap.write_text(json.dumps(config).replace("CHANGE-ME", "edited"))
    assert run_on_node(guards[0], home).returncode == 0
