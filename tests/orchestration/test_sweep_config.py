"""Sweep configuration layers, overrides and search spaces (plain functions, no Ray)."""

from __future__ import annotations

import json

import pytest

from orchestration.config import (
    DEMO_SHRINK,
    DEMO_TRAIN,
    SweepConfig,
    SweepSpec,
    apply_override,
    config_id,
    grid_configurations,
    load_config_file,
    random_configurations,
)
from orchestration.cv_sweep import build_parser, spec_from_args
from orchestration.plan import configurations


def _spec(*argv: str) -> SweepSpec:
    return spec_from_args(build_parser().parse_args(list(argv)))


def test_defaults_are_the_embedded_demo():
    spec = _spec()
    assert spec.sweep.data_dir is None and spec.sweep.folds == tuple(range(1, 11))
    assert spec.train.epochs == DEMO_TRAIN["epochs"]
    assert [p for _, p in configurations(spec)] == [{"learning_rate": 1e-4}, {"learning_rate": 1e-3}]


def test_real_data_keeps_reference_training_settings(tmp_path):
    spec = _spec("--data-dir", str(tmp_path))
    assert spec.train.epochs == 360 and spec.train.batch_size == 128 and spec.train.learning_rate == 1e-4
    assert spec.train.filters == (32, 32, 64, 64) and spec.features.frames == 174  # never shrunk


def test_the_demo_is_shrunk_unless_full_size():
    shrunk = _spec()
    assert shrunk.train.filters == tuple(DEMO_SHRINK["train"]["filters"])
    assert shrunk.features.frames == DEMO_SHRINK["features"]["frames"]
    full = _spec("--full-size")
    assert full.train.filters == (32, 32, 64, 64) and full.features.frames == 174
    assert full.train.epochs == shrunk.train.epochs == DEMO_TRAIN["epochs"]  # both train as the demo does
    # An explicit setting beats the shrink.
    assert _spec("--set", "features.frames=120").features.frames == 120


def test_layers_round_trip_through_dicts():
    spec = _spec("--folds", "1-3", "--set", "train.dropout1=0.2", "--search", "random", "--num-samples", "3",
                 "--search-space", '{"learning_rate": {"loguniform": [1e-5, 1e-2]}}')
    again = SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.sweep.folds == (1, 2, 3) and again.train.dropout1 == 0.2


def test_precedence_file_then_set_then_flags(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("train:\n  epochs: 7\n  learning_rate: 1e-2\nsweep:\n  folds: [1, 2]\n  experiment: from-file\n")
    spec = _spec("--config", str(path), "--set", "train.epochs=9", "--epochs", "11", "--experiment", "flag")
    assert spec.train.epochs == 11  # flag beats --set beats file
    assert spec.train.learning_rate == 0.01 and spec.sweep.folds == (1, 2)
    assert spec.sweep.experiment == "flag"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--folds", "0,1"], "fold 0 is outside 1..10"),
        (["--folds", "11"], "fold 11 is outside 1..10"),
        (["--epochs", "-3"], "TrainConfig.epochs must be >= 1"),
        (["--set", "train.learnin_rate=1"], "unknown key(s) learnin_rate"),
        (["--set", "sweep.foo=1"], "SweepConfig: unknown key(s) foo"),
        (["--set", "model.epochs=1"], "section must be one of features, augment, train, sweep"),
        (["--set", "train.epochs"], "expected section.key=value"),
        (["--workers-per-trial", "0"], "workers_per_trial must be an integer >= 1"),
        (["--search-space", '{"learning_rat": [1]}'], "'learning_rat' is not a train setting"),
        (["--search-space", '{"learning_rate": {"loguniform": [1e-5, 1e-2]}}'], "cannot be enumerated by grid"),
        (["--search", "random", "--search-space", '{"learning_rate": {"loguniform": [0, 1]}}'], "lo > 0"),
        (["--search-space", "{not json"], "not valid JSON"),
    ],
)
def test_bad_values_are_rejected_with_a_message(argv, message):
    with pytest.raises(ValueError) as info:
        _spec(*argv)
    assert message in str(info.value)


def test_grid_values_rejected_by_train_config_fail_before_any_trial():
    spec = _spec("--search-space", '{"dropout1": [0.1, 1.5]}')
    with pytest.raises(ValueError, match="dropout1 must be in"):
        configurations(spec)


def test_augmentation_the_features_cannot_take_fails_before_any_trial():
    # The demo's features are 87 frames wide (DEMO_SHRINK): a 100-frame time mask cannot fit.
    spec = _spec("--search-space", '{"time_mask_width": [10, 100]}', "--set", "train.time_masks=1",
                 "--set", "train.time_mask_width=5")
    with pytest.raises(ValueError, match=r"TrainConfig.time_mask_width must be <= the input's 87 frames, got 100"):
        configurations(spec)
    spec = _spec("--set", "train.freq_masks=1", "--set", "train.freq_mask_width=50")
    with pytest.raises(ValueError, match=r"TrainConfig.freq_mask_width must be <= the input's 40 mel bands"):
        configurations(spec)
    # Delta channels are stored as extra rows (120 for 40 bands x 3): masks span the 40 bands.
    deltas = ("--set", "features.deltas=2", "--set", "train.freq_masks=1")
    with pytest.raises(ValueError, match=r"freq_mask_width must be <= the input's 40 mel bands, got 41"):
        configurations(_spec(*deltas, "--set", "train.freq_mask_width=41"))
    assert configurations(_spec(*deltas, "--set", "train.freq_mask_width=40"))
    searchable = _spec("--search-space", '{"architecture": ["sb-cnn", "vgg-bn"], "mixup_alpha": [0, 0.2]}')
    assert len(configurations(searchable)) == 4


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match=str(bad)):
        load_config_file(bad)
    with pytest.raises(ValueError, match="unknown section"):
        SweepSpec.from_dict({"trian": {}})


def test_grid_enumerates_every_point_in_stable_order():
    points = grid_configurations({"learning_rate": [1e-4, 1e-3], "batch_size": [32, 64, 128]})
    assert len(points) == 6
    assert points[0] == {"learning_rate": 1e-4, "batch_size": 32}
    assert points[-1] == {"learning_rate": 1e-3, "batch_size": 128}


def test_random_search_is_seeded_and_within_bounds():
    space = {"learning_rate": {"loguniform": [1e-5, 1e-2]}, "dropout1": {"uniform": [0.0, 0.3]},
             "batch_size": [32, 64], "kernel_size": {"randint": [2, 5]}}
    a = random_configurations(space, 5, seed=3)
    assert a == random_configurations(space, 5, seed=3)
    assert a != random_configurations(space, 5, seed=4)
    for p in a:
        assert 1e-5 <= p["learning_rate"] <= 1e-2 and 0 <= p["dropout1"] <= 0.3
        assert p["batch_size"] in (32, 64) and p["kernel_size"] in (2, 3, 4)


def test_config_id_is_deterministic_and_distinguishes_values():
    import numpy as np

    assert config_id({"learning_rate": 1e-3, "batch_size": 32}) == config_id({"batch_size": 32, "learning_rate": 1e-3})
    assert config_id({"batch_size": np.int64(32)}) == config_id({"batch_size": 32})
    assert config_id({"learning_rate": 1e-3}) != config_id({"learning_rate": 1e-4})


def test_override_parses_yaml_values():
    data: dict = {}
    apply_override(data, "sweep.search_space.learning_rate=[1e-4, 1e-3]")
    apply_override(data, "train.normalise=false")
    apply_override(data, "train.mixed_precision=off")  # YAML 1.1 would make this False
    assert data == {
        "sweep": {"search_space": {"learning_rate": [1e-4, 1e-3]}},
        "train": {"normalise": False, "mixed_precision": "off"},
    }
    assert SweepConfig.from_dict(data["sweep"]).search_space == {"learning_rate": [1e-4, 1e-3]}


def test_every_train_field_new_ones_included_is_a_configuration_param():
    import dataclasses

    from model.config import TrainConfig
    from orchestration.sweep_runner import fold_params
    from orchestration.tracking import flatten

    params = flatten(fold_params(TrainConfig().to_dict(), {"architecture": "sb-cnn", "mixup_alpha": 0.2}))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {"architecture", "optimizer", "lr_schedule", "mixup_alpha", "time_shift", "freq_mask_width"} <= names
    assert names <= set(params)
    assert params["architecture"] == "sb-cnn" and params["mixup_alpha"] == 0.2 and params["time_masks"] == 0
