"""The ``augment`` section of a sweep: config file and --set, stored with the spec, logged as
params on the sweep and configuration runs; fold runs' training dataset digest covers it."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from features.augment import AugmentConfig
from orchestration.config import SweepSpec
from orchestration.cv_sweep import build_parser, spec_from_args
from orchestration.sweep_runner import fold_params
from orchestration.tracking import SweepTracker, flatten


def _spec(*argv: str) -> SweepSpec:
    return spec_from_args(build_parser().parse_args(list(argv)))


def test_default_is_no_augmentation():
    spec = _spec()
    assert spec.augment == AugmentConfig() and spec.augment.empty
    assert fold_params(spec.train.to_dict(), {}, spec.augment) == spec.train.to_dict()  # params as before


def test_augment_section_from_a_file_and_set(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("augment:\n  time_stretch: [0.81, 1.23]\n  drc: [radio]\n")
    spec = _spec("--config", str(path), "--set", "augment.pitch_shift=[-2, 2]", "--set", "augment.noise_mixes=1")
    assert spec.augment.time_stretch == (0.81, 1.23) and spec.augment.pitch_shift == (-2.0, 2.0)
    assert spec.augment.drc == ("radio",) and spec.augment.noise_mixes == 1 and spec.augment.per_clip == 6
    again = SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict())))  # what a stored spec reads back
    assert again == spec
    # A spec stored before the section existed reads as "no augmentation".
    old = {k: v for k, v in spec.to_dict().items() if k != "augment"}
    assert SweepSpec.from_dict(old).augment.empty


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--set", "augment.stretch=[0.9]"], "unknown key"), (["--set", "augment.drc=[loud]"], "unknown preset"),
     (["--set", "augmentation.drc=[radio]"], "section must be one of")],
)
def test_bad_augment_settings_are_rejected(argv, message):
    with pytest.raises(ValueError, match=message):
        _spec(*argv)


def test_params_and_dataset_digests_cover_the_augmentation(tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    spec = _spec("--set", "augment.drc=[radio]", "--set", "augment.seed=3")
    tracker = SweepTracker(store, "exp", "s1")
    tracker.start_sweep(spec.to_dict(), {})
    params = fold_params(spec.train.to_dict(), {"learning_rate": 1e-3}, spec.augment)
    assert params["augment.drc"] == ["radio"] and params["learning_rate"] == 1e-3
    tracker.feature_keys = {1: "k1", 2: "k2", 3: "k3"}
    tracker.config_run("c1", "x", params, ["learning_rate"])
    plain = MlflowClient(store).get_run(tracker.fold_run("c1", 2, params))
    tracker.augment_keys = {1: "a1", 2: "a2", 3: "a3"}
    tracker.config_run("c2", "x", params, ["learning_rate"])
    augmented = MlflowClient(store).get_run(tracker.fold_run("c2", 2, params))
    client = MlflowClient(store)
    assert client.get_run(tracker.sweep_run_id).data.params["augment.drc"] == '["radio"]'
    assert client.get_run(tracker._config_runs["c2"]).data.params["augment.seed"] == "3"
    assert set(flatten(spec.to_dict())) >= {"augment.time_stretch", "augment.noise_source"}

    def digests(run):
        return {i.tags[0].value: (i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs}

    before, after = digests(plain), digests(augmented)
    assert after["training"][1] != before["training"][1] and after["training"][0].endswith("+ augmented")
    assert after["validation"] == before["validation"] and after["test"] == before["test"]


def test_the_sweep_driver_adds_augmented_rows_only_when_configured(ray_local, tiny_dataset, tmp_path, capsys):
    from types import SimpleNamespace

    from features.dataset import load_dataset
    from features.extract import extract_features
    from orchestration.sweep_features import augmented

    index = load_dataset(tiny_dataset.root, folds=(7,))
    base = extract_features(index, _spec().features, tmp_path, progress=False).featureset
    plain, info = augmented(SimpleNamespace(spec=_spec()), index, base, tmp_path)
    assert plain is base and info == {}  # default: nothing computed, nothing tagged
    spec = _spec("--set", "augment.drc=[speech]")
    first, info = augmented(SimpleNamespace(spec=spec), index, base, tmp_path)
    assert len(first.augmented) == len(base) and info["us8k.augmented_rows"] == str(len(base))
    assert info["us8k.augment_digest"] == spec.augment.digest()
    capsys.readouterr()
    again, info_again = augmented(SimpleNamespace(spec=spec), index, base, tmp_path)
    assert "loaded from cache" in capsys.readouterr().out and info_again == info
    assert (again.augmented.features == first.augmented.features).all()
