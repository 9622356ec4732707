"""Plan-time checks of the dataset and of the folders a sweep writes to (orchestration.inputs),
and the sweep's --dry-run, which runs them all and exits. Each kind of bad input has its row
in tests/test_bad_input.py; here: a valid set-up passes and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

from orchestration.cv_sweep import main
from orchestration.inputs import tracking_folder


def test_dry_run_of_a_valid_sweep_checks_everything_and_writes_nothing(tiny_dataset_root, tmp_path, capsys):
    args = ["--data-dir", str(tiny_dataset_root), "--folds", "1,2", "--cache-dir", str(tmp_path / "cache"),
            "--storage-path", str(tmp_path / "ray"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "dry run: every plan-time check passed; nothing was run" in out
    assert f"dataset: {tiny_dataset_root}" in out and "2 configuration(s) x 2 fold(s)" in out
    assert sorted(os.listdir(tmp_path)) == []  # the write probes left nothing, created nothing


def test_tracking_folder_of_each_kind_of_store():
    assert tracking_folder("sqlite:////data/mlflow/m.db") == Path("/data/mlflow")
    assert tracking_folder("sqlite:///m.db") == Path.cwd()
    assert tracking_folder("file:///data/mlruns") == Path("/data/mlruns")
    assert tracking_folder("/data/mlruns") == Path("/data/mlruns")
    assert tracking_folder("http://127.0.0.1:5000") is None
