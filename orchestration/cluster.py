"""What the Ray cluster offers the sweep: resources now, and the most an autoscaler may add.

A cluster made by ``ray up`` can grow GPU nodes after the sweep starts, so the GPU and
concurrency checks use, per resource, the larger of what is up now and what the launcher's
config allows: the head keeps that config at ``~/ray_bootstrap_config.yaml`` (the cluster
YAML with defaults filled in), ``available_node_types.<type>.resources`` x ``max_workers``.
Elsewhere (a local Ray, ``ray start`` by hand) there is no such file and the resources up
now are all there is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

LAUNCHER_CONFIG = Path("~/ray_bootstrap_config.yaml")


def launcher_max_resources(config: Mapping[str, Any]) -> dict[str, float]:
    """Resources of the head plus every worker node type at its ``max_workers``.

    The cluster-wide ``max_workers`` caps the worker count; node types are counted largest
    first, so the figure is an upper bound, as the autoscaler's own is.
    """
    node_types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    total: dict[str, float] = {}

    def add(resources: Mapping[str, Any], count: int) -> None:
        for name, value in (resources or {}).items():
            total[name] = total.get(name, 0.0) + float(value) * count

    if head in node_types:
        add(node_types[head].get("resources", {}), 1)
    budget = int(config.get("max_workers", 10**6))
    workers = [(name, t) for name, t in node_types.items() if name != head]
    workers.sort(key=lambda item: -sum(float(v) for v in (item[1].get("resources") or {}).values()))
    for _, node_type in workers:
        count = min(int(node_type.get("max_workers", 0)), budget)
        add(node_type.get("resources", {}), count)
        budget -= count
    return total


def cluster_resources(launcher_config: Path = LAUNCHER_CONFIG) -> dict[str, float]:
    """Per resource: the larger of what the cluster has now and what its launcher allows."""
    import ray

    now = dict(ray.cluster_resources())
    most: dict[str, float] = {}
    path = launcher_config.expanduser()
    if path.is_file():
        try:
            most = launcher_max_resources(yaml.safe_load(path.read_text()) or {})
        except (OSError, yaml.YAMLError, TypeError, ValueError) as exc:
            print(f"warning: cannot read {path} ({exc}); using the resources up now", flush=True)
    return {k: max(now.get(k, 0.0), most.get(k, 0.0)) for k in set(now) | set(most)}
