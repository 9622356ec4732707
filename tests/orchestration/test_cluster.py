"""What the sweep believes the cluster can offer: resources up now, or what the launcher's
config lets the autoscaler add (cluster.yaml's own node types)."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestration.cluster import cluster_resources, launcher_max_resources

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_can_grow_to_eight_gpus():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    most = launcher_max_resources(config)
    # Head: 0 CPUs for work; gpu_4x: 1 x (48 CPU, 4 GPU); gpu_1x: 4 x (4 CPU, 1 GPU); 5 workers in all.
    assert most["GPU"] == 8
    assert most["CPU"] == 48 + 4 * 4


def test_cluster_wide_max_workers_caps_the_count():
    config = {
        "max_workers": 2,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 2}},
            "big": {"resources": {"CPU": 8, "GPU": 2}, "max_workers": 1},
            "small": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": 5},
        },
    }
    # The largest type first, then the rest of the budget: 2 + 8 + 1 CPUs, 2 + 1 GPUs.
    assert launcher_max_resources(config) == {"CPU": 11.0, "GPU": 3.0}


def test_without_a_launcher_config_the_resources_up_now_are_all(ray_local, tmp_path):
    now = cluster_resources(tmp_path / "absent.yaml")
    assert now["CPU"] == ray_local.cluster_resources()["CPU"] and "GPU" not in now


def test_a_launcher_config_raises_what_is_up_now(ray_local, tmp_path):
    path = tmp_path / "ray_bootstrap_config.yaml"
    path.write_text(yaml.safe_dump({
        "head_node_type": "head",
        "available_node_types": {"head": {"resources": {}}, "gpu": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 3}},
    }))
    both = cluster_resources(path)
    assert both["GPU"] == 3 and both["CPU"] == max(12, ray_local.cluster_resources()["CPU"])
