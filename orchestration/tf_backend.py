"""Ray Train backend config for TensorFlow that does not import TensorFlow where it is loaded.

``ray.train.tensorflow.TensorflowConfig`` lives in a package whose ``__init__`` imports
TensorFlow, and the Train controller unpickles the backend config: the stock config makes every
controller process pay a 3-5 s ``import tensorflow`` it never uses. This module does the same
set-up (``TF_CONFIG`` for MultiWorkerMirroredStrategy on every worker) and must stay free of
TensorFlow imports.
"""

from __future__ import annotations

import json
import os

from ray.train.backend import Backend, BackendConfig


def _set_tf_config(worker_addresses: list[str], index: int) -> None:
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": worker_addresses}, "task": {"type": "worker", "index": index}}
    )
    # Keras 3 fails under MultiWorkerMirroredStrategy; Ray's own backend sets this too.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _worker_address() -> str:
    from ray._common.network_utils import build_address
    from ray.train._internal.utils import get_address_and_port

    return build_address(*get_address_and_port())


class _TFBackendNoImport(Backend):
    """The steps of ray.train.tensorflow.config._TensorflowBackend.on_start."""

    def on_start(self, worker_group, backend_config) -> None:
        import ray

        urls = worker_group.execute(_worker_address)
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
