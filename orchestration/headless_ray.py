"""Arguments for a Ray started without its dashboard, safe beside other Ray instances.

Ray 2.60 starts a dashboard process even with ``include_dashboard=False``: its HTTP server is
off, yet it publishes ``127.0.0.1:<dashboard_port>`` (default 8265) in GCS as the cluster's
State API address. Ray Train V2 runs a ``PlacementGroupCleaner`` actor beside every run; once a
second it asks that address, with the State API, whether the run's controller is alive, and a
"not found" answer counts as dead (``is_actor_alive`` returns falsy for a missing actor; see the
review of ray-project/ray#65447, where the same check is flagged "Live PGs cleaned after false
death"). So when any other Ray on the machine serves its dashboard without token authentication
on 8265 (``ray start``, ``Cluster()``, a minimal ``ray.init`` with ``RAY_AUTH_MODE=disabled``),
the cleaner asks that cluster about its own controller, hears "not found", and removes the live
run's placement group: every worker dies with "Destroying worker since its placement group was
removed" and ``fit()`` fails with "A worker health check failed". This is how a CI run of
``tests/benchmarks/test_training.py`` failed while the other pytest-xdist worker's Ray served
its dashboard (stop 21).

``headless_ray_args()`` keeps ``include_dashboard=False`` and gives the dashboard a free port of
its own, from the OS's ephemeral range (never one Ray picks for a dashboard: 8265 and up): the
published address is then one nothing listens on, the cleaner's query fails ("State API may be
temporarily unavailable. Continuing to monitor.") and the run is left alone. The cleaner's own
job, removing the placement group of a run whose controller died, needs the State API: with
the dashboard off it cannot do that anyway. Public API only (``ray.init`` / ``Cluster`` head
arguments); ``tests/orchestration/test_headless_ray.py`` reproduces the false death and pins
this fix against it.
"""

from __future__ import annotations

import socket


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that the OS reports free now (its ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def headless_ray_args() -> dict[str, object]:
    """``ray.init(**headless_ray_args(), ...)`` or ``Cluster(head_node_args={**headless_ray_args(),
    ...})``: no dashboard, and a State API address of its own (see the module docstring)."""
    return {"include_dashboard": False, "dashboard_port": free_local_port()}
