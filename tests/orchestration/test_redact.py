"""No credential in anything the project prints or logs: URIs are redacted."""

from __future__ import annotations

import pytest

from orchestration.redact import redact, redact_mapping


@pytest.mark.parametrize(("uri", "expected"), [
    ("https://alice:s3cret@mlflow.example.com:5000", "https://alice:***@mlflow.example.com:5000"),
    ("postgresql://mlflow:pw@db.internal/mlflow", "postgresql://mlflow:***@db.internal/mlflow"),
    ("s3://bucket/ray?access_key=AKIA123&secret_key=xyz", "s3://bucket/ray?access_key=***&secret_key=***"),
    ("https://token@host/path", "https://***@host/path"),
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("/home/user/ray_results", "/home/user/ray_results"),
])
def test_uris_keep_where_and_lose_secrets(uri, expected):
    assert redact(uri) == expected


def test_uris_inside_messages_and_specs_are_redacted():
    message = "cannot reach the MLflow tracking server at https://u:p@h:5000 (refused)"
    assert redact(message) == "cannot reach the MLflow tracking server at https://u:***@h:5000 (refused)"
    spec = {"sweep": {"tracking_uri": "https://u:p@h", "storage_path": "s3://b/x?sig=abc", "folds": [1, 2]}}
    clean = redact_mapping(spec)
    assert clean == {"sweep": {"tracking_uri": "https://u:***@h", "storage_path": "s3://b/x?sig=***", "folds": [1, 2]}}
    assert spec["sweep"]["tracking_uri"] == "https://u:p@h"  # the original is untouched


def test_a_sweep_with_credentials_in_its_uris_never_prints_or_stores_them(tmp_path, capsys):
    """Fails before compute (the server is unreachable): the message names the server without
    its password; and what the results and stored spec would hold is redacted."""
    from orchestration.cv_sweep import main

    uri = "http://alice:hunter2@127.0.0.1:9/"
    assert main(["--storage-path", str(tmp_path), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "alice:***@127.0.0.1" in err


def test_the_stored_spec_is_redacted_and_a_resume_takes_this_commands_uri(tmp_path):
    import json

    from orchestration.config import SweepSpec
    from orchestration.plan import SPEC_FILE, Plan, _unredacted, read_stored_spec, write_stored_spec

    spec = SweepSpec.from_dict({"sweep": {"tracking_uri": "https://u:pw@host", "name": "s"}})
    write_stored_spec(Plan(spec, "s", str(tmp_path), "https://u:pw@host", 0.0, 1, (), False))
    text = (tmp_path / "s" / SPEC_FILE).read_text()
    assert "pw" not in text and json.loads(text)["sweep"]["tracking_uri"] == "https://u:***@host"
    stored = read_stored_spec(str(tmp_path), "s")
    assert _unredacted(stored.sweep, spec.sweep) == {"tracking_uri": "https://u:pw@host"}


def test_failure_tags_on_mlflow_runs_carry_no_credentials(tmp_path):
    """A trial's error (a traceback quoting a presigned S3 URL or a tracking URI with a password)
    is stored on its fold run redacted."""
    from orchestration.tracking import SweepTracker

    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "exp", "s1")
    failed, stopped = (tracker.client.create_run(tracker.experiment_id).info.run_id for _ in range(2))
    error = ("OSError: When reading s3://bucket/ckpt?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=f00d: "
             "access denied; tracking at https://alice:hunter2@mlflow.example")
    tracker.fail_fold(failed, error)
    tracker.stop_fold(stopped, f"time budget ran out ({error})")
    for run_id, tag in ((failed, "us8k.error"), (stopped, "us8k.stopped")):
        text = tracker.client.get_run(run_id).data.tags[tag]
        assert "AKIAEXAMPLE" not in text and "f00d" not in text and "hunter2" not in text
        assert "s3://bucket/ckpt?X-Amz-Credential=***&X-Amz-Signature=***" in text
        assert "https://alice:***@mlflow.example" in text
