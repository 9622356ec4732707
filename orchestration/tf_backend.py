"""Ray Train backend config for TensorFlow that does not import TensorFlow where it is loaded.

``ray.train.tensorflow.TensorflowConfig`` lives in a package whose ``__init__`` imports
TensorFlow, and the Train controller unpickles the backend config: the stock config makes every
controller process (one per ``fit()``) pay a 3-5 s ``import tensorflow`` it never uses. This
backend does the same set-up through Train's public ``Backend`` interface (``TF_CONFIG`` for
MultiWorkerMirroredStrategy on every worker) and must stay free of TensorFlow imports.
"""

from __future__ import annotations

import json
import os
import socket

from ray.train.backend import Backend, BackendConfig


def _set_tf_config(worker_addresses: list[str], index: int) -> None:
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": worker_addresses}, "task": {"type": "worker", "index": index}}
    )
    # Keras 3 fails under MultiWorkerMirroredStrategy; Ray's own backend sets this too.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


def worker_address() -> str:
    """``host:port`` for this worker's gRPC server: the node's IP and a port free right now."""
    import ray

    ip = ray.util.get_node_ip_address()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class _TFBackendNoImport(Backend):
    """The steps of Ray's ``_TensorflowBackend.on_start``: addresses, then ``TF_CONFIG``."""

    def on_start(self, worker_group, backend_config) -> None:
        import ray

        urls = worker_group.execute(worker_address)
        ray.get(
            [
                worker_group.execute_single_async(i, _set_tf_config, worker_addresses=urls, index=i)
                for i in range(len(worker_group))
            ]
        )


class TFConfigNoImport(BackendConfig):
    @property
    def backend_cls(self):
        return _TFBackendNoImport
