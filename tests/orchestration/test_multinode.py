"""Multi-node behaviour on one machine: a ``ray.cluster_utils.Cluster`` of three nodes.

Nodes: the head (1 CPU; the driver runs here), a "GPU" node (2 CPUs + 1 GPU declared; Ray
allows GPUs without hardware, TensorFlow then falls back to the CPU) and a CPU node (1 CPU).
Shown: feature-extraction batches run on several nodes and give exactly the features of an
in-process extraction; the sweep's trials (``--gpus-per-worker 1``) train on the GPU node only;
a Train worker on another node gets the features through the object store after the driver's
copies of the dataset and feature cache are deleted. (Ray Train's checkpoint storage is a
local directory here; on a real cluster it must be shared storage such as S3.)

Ray allows one cluster connection per process and the session-wide ``ray_local`` fixture
holds one, so ``test_three_node_cluster`` runs this module's ``inner`` tests in a child
pytest process (80-130 s on 2 shared cores, most of it the 2-trial sweep) and leaves this
process's Ray untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from orchestration.headless_ray import headless_ray_args

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Set only in the child process: the tiny synthetic dataset the inner tests copy and use.
ENV_DATA = "US8K_MULTINODE_DATA"
INNER_TESTS = {
    "test_inner_extraction_spreads_over_nodes_and_matches_local",
    "test_inner_sweep_trials_train_on_the_gpu_node",
    "test_inner_worker_on_another_node_needs_no_dataset_or_cache",
}
BATCH = 8  # clips per extraction task: 25 tasks for the 200 tiny clips
TRAIN_WORKER = "RayTrainWorker"
CHILD_TIMEOUT_S = 3600  # a hang guard only: never a speed expectation


# ---------------------------------------------------------------------------------------------
# The test the suite runs: the inner tests in a child process with its own Ray.


def test_three_node_cluster(request, inner_pytest):
    if os.environ.get(ENV_DATA):
        pytest.skip("already inside the multi-node child process")
    tiny_dataset_root = request.getfixturevalue("tiny_dataset_root")  # not generated when skipped
    # Ray workers run with OMP_NUM_THREADS=1; a multithreaded driver rounds float32 features
    # differently (last bit), and the features are compared bit for bit.
    env = {ENV_DATA: str(tiny_dataset_root), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    out, passed = inner_pytest(str(Path(__file__)), env, timeout=CHILD_TIMEOUT_S)
    assert passed == INNER_TESTS, out[-4000:]
    print(f"multi-node child process: {time.monotonic() - started:.0f} s")


# ---------------------------------------------------------------------------------------------
# Inner tests: only in the child process.

inner = pytest.mark.skipif(not os.environ.get(ENV_DATA), reason="runs inside test_three_node_cluster's child process")


@dataclass(frozen=True)
class Nodes:
    cluster: object  # ray.cluster_utils.Cluster
    head: str
    gpu: str
    cpu: str

    @property
    def all(self) -> set[str]:
        return {self.head, self.gpu, self.cpu}


@pytest.fixture(scope="module")
def nodes():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **headless_ray_args()})
    try:
        # 2 CPUs on the GPU node: a sweep's Tune trial actor (0.01 CPU) may land there, and
        # with 1 CPU its own Train worker (1 CPU + 1 GPU) could then never be placed.
        gpu = cluster.add_node(num_cpus=2, num_gpus=1)
        cpu = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield Nodes(cluster, cluster.head_node.node_id, gpu.node_id, cpu.node_id)
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def driver(nodes):
    """This process connected to the cluster (the sweep test reconnects through its CLI)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=nodes.cluster.address, log_to_driver=False, configure_logging=False)
    assert ray.get_runtime_context().get_node_id() == nodes.head
    return ray


@dataclass(frozen=True)
class Extracted:
    root: Path
    cache: Path
    result: object  # features.extract.ExtractionResult
    transport: str


@pytest.fixture(scope="module")
def extracted(nodes, tmp_path_factory) -> Extracted:
    """The tiny dataset (a private copy) extracted once on the cluster into a fresh cache."""
    import ray

    from features.config import FeatureConfig
    from features.dataset import load_dataset
    from features.extract import _auto_transport, extract_features

    if not ray.is_initialized():
        ray.init(address=nodes.cluster.address, log_to_driver=False, configure_logging=False)
    work = tmp_path_factory.mktemp("extracted")
    root = work / "data"
    shutil.copytree(os.environ[ENV_DATA], root)  # copy2 keeps mtimes: same cache keys
    index = load_dataset(root)
    result = extract_features(index, FeatureConfig(), work / "cache", batch_size=BATCH, progress=False)
    return Extracted(root, work / "cache", result, _auto_transport())


def _train_worker_nodes(ray) -> dict[str, str]:
    """actor id -> node id of every Ray Train worker actor, alive or dead (GCS actor table)."""
    return {
        actor_id: info["Address"]["NodeID"]
        for actor_id, info in ray._private.state.actors().items()
        if info["ActorClassName"] == TRAIN_WORKER
    }


@inner
def test_inner_extraction_spreads_over_nodes_and_matches_local(nodes, extracted):
    from features.config import FeatureConfig
    from features.dataset import load_dataset
    from features.extract import extract_batch

    result = extracted.result
    assert extracted.transport == "bytes"  # several nodes: clips travel through the object store
    assert result.extracted_clips == 200 and not result.failures
    used = set(result.nodes)  # the nodes that ran extraction batches
    assert used <= nodes.all and len(used) >= 2, result.nodes

    # Reference: the same clips decoded in this process, from their paths, without Ray.
    index = load_dataset(extracted.root)
    _, local, failed = extract_batch(list(enumerate(index.table["path"])), FeatureConfig())
    assert not failed
    row_of = {name: i for i, name in enumerate(index.table["slice_file_name"])}
    fs = result.featureset
    assert sorted(fs.file_names) == sorted(row_of)
    expected = local[[row_of[name] for name in fs.file_names]]
    assert np.array_equal(fs.features, expected)
    assert np.array_equal(fs.labels, index.table["classID"].to_numpy()[[row_of[n] for n in fs.file_names]])


@inner
def test_inner_sweep_trials_train_on_the_gpu_node(nodes, extracted, tmp_path):
    import ray

    from orchestration.cv_sweep import main

    before = set(_train_worker_nodes(ray))  # `extracted` connected this process
    ray.shutdown()  # the sweep's own --address connects this process again
    code = main([
        "--address", nodes.cluster.address,
        "--data-dir", str(extracted.root), "--cache-dir", str(extracted.cache), "--folds", "1,2",
        "--search-space", '{"dropout1": [0.1]}', "--epochs", "1", "--gpus-per-worker", "1",
        # Quoted: unquoted YAML reads off as the boolean False.
        "--set", "train.batch_size=32", "--set", 'train.mixed_precision="off"',
        "--storage-path", str(tmp_path / "ray"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
        "--name", "multinode", "--no-log-models", "--no-refit",
    ])
    assert code == 0
    assert ray.get_runtime_context().get_node_id() == nodes.head
    workers = {a: n for a, n in _train_worker_nodes(ray).items() if a not in before}
    assert len(workers) == 2, workers  # one Train run per (configuration, fold), 1 worker each
    assert set(workers.values()) == {nodes.gpu}
    results = json.loads((tmp_path / "ray" / "multinode" / "results.json").read_text())
    (config,) = results["configurations"]
    assert sorted(config["fold_accuracy"]) == ["1", "2"] and not config["failed_folds"]


@inner
def test_inner_worker_on_another_node_needs_no_dataset_or_cache(nodes, extracted, driver, tmp_path):
    from features.config import FeatureConfig
    from features.dataset import load_dataset
    from features.extract import extract_features
    from model.checkpoints import load_report
    from model.config import TrainConfig
    from orchestration.train_fold import RunSettings, WorkerResources, train_fold

    root, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(extracted.root, root)
    shutil.copytree(extracted.cache, cache)
    loaded = extract_features(load_dataset(root), FeatureConfig(), cache, progress=False)
    assert loaded.extracted_clips == 0  # from the cache
    fs = loaded.featureset
    features_ref = driver.put(fs)
    shutil.rmtree(root)
    shutil.rmtree(cache)
    assert not root.exists() and not cache.exists()

    before = set(_train_worker_nodes(driver))
    test_fold = 1
    result = train_fold(
        features_ref, test_fold, TrainConfig(epochs=1, batch_size=32, mixed_precision="off"),
        WorkerResources(workers=1, gpus=1), RunSettings(storage_path=str(tmp_path / "runs"), name="no-shared-fs"),
    )
    assert result.error is None
    assert result.metrics["final"] == 1 and 0.0 <= result.metrics["test_accuracy"] <= 1.0
    with result.checkpoint.as_directory() as directory:
        report = load_report(directory)
    assert report["test"]["num_samples"] == int(np.sum(fs.folds == test_fold))

    workers = {a: n for a, n in _train_worker_nodes(driver).items() if a not in before}
    assert list(workers.values()) == [nodes.gpu]
    assert nodes.gpu != driver.get_runtime_context().get_node_id()
    # The worker's node pulled a copy of the features into its own object store.
    from ray.experimental import get_object_locations

    holders = set(get_object_locations([features_ref])[features_ref]["node_ids"])
    assert {nodes.head, nodes.gpu} <= holders, holders
