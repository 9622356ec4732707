"""Resuming a sweep with a changed configuration: refused with what changed, unless
--force-config (no Ray, no compute: preflight only)."""

from __future__ import annotations

import pytest

from orchestration.config import SweepSpec
from orchestration.cv_sweep import build_parser, given_settings, main
from orchestration.plan import SweepError, config_changes, preflight, write_stored_spec


def _given(*argv: str) -> dict:
    return given_settings(build_parser().parse_args(list(argv)))


@pytest.fixture
def started(tmp_path):
    """A sweep's stored spec, as a first run leaves it; its command-line arguments."""
    args = ["--storage-path", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "cache"),
            "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--folds", "1,2", "--epochs", "3",
            "--search-space", '{"dropout1": [0.0, 0.2]}']
    given = _given(*args, "--name", "s1")
    plan = preflight(SweepSpec.from_dict(given), False, given)
    write_stored_spec(plan)
    return args, plan


def test_the_same_settings_or_none_resume_as_stored(started):
    args, plan = started
    for argv in (args, ["--storage-path", args[1], "--tracking-uri", args[5]]):  # all again, or where only
        given = _given(*argv)
        resumed = preflight(SweepSpec.from_dict(given), "s1", given)
        assert resumed.resume and resumed.spec == plan.spec and not resumed.spec_changed


def test_changed_settings_are_refused_with_a_readable_diff(started, capsys):
    args, plan = started
    code = main([*args, "--epochs", "5", "--set", "train.dropout2=0.3", "--folds", "1-3", "--resume", "s1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "--force-config" in err
    assert "  train.epochs: 3 -> 5" in err
    assert f"  train.dropout2: {plan.spec.train.dropout2} -> 0.3" in err
    assert "  sweep.folds: [1, 2] -> [1, 2, 3]" in err
    assert "sweep.address" not in err and "learning_rate" not in err  # only what changed


def test_force_config_resumes_with_the_new_values(started, capsys):
    args, _ = started
    given = _given(*args, "--epochs", "5", "--address", "ray://elsewhere:10001")
    with pytest.raises(SweepError):
        preflight(SweepSpec.from_dict(given), "s1", given)
    forced = preflight(SweepSpec.from_dict(given), "s1", given, force_config=True)
    assert forced.spec.train.epochs == 5 and forced.spec_changed
    assert forced.spec.sweep.address == "ray://elsewhere:10001"  # where it runs may always change
    assert "train.epochs: 3 -> 5" in capsys.readouterr().out


def test_uris_are_compared_redacted():
    stored = SweepSpec.from_dict({"sweep": {"tracking_uri": "https://user:***@host/"}})  # as stored
    assert config_changes(stored, {"sweep": {"tracking_uri": "https://user:pass@host/"}})[1] == []
    _, changes = config_changes(stored, {"sweep": {"tracking_uri": "https://user:pass@other/"}})
    assert changes == ['sweep.tracking_uri: "https://user:***@host/" -> "https://user:***@other/"']
