"""The sweep's live progress on hand-made trials: event lines off a terminal (epochs throttled),
a redrawn status line on one, per-configuration fold counts and a time-left estimate."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

from orchestration.progress import ProgressCallback


def _trial(trial_id: str, cfg: str, fold: int, status: str = "RUNNING", **last):
    return SimpleNamespace(trial_id=trial_id, status=status, error_file="/tmp/err.txt",
                           config={"config_id": cfg, "fold": fold}, last_result=last)


def test_off_a_terminal_each_event_is_one_line():
    out = io.StringIO()
    progress = ProgressCallback(total_trials=4, epochs=3, folds=2, stream=out, tty=False, epoch_every_s=3600)
    a, b = _trial("a", "c1", 1), _trial("b", "c2", 1)
    progress.on_step_begin(0, [a, b])
    progress.on_trial_start(0, [a, b], a)
    progress.on_trial_start(0, [a, b], b)
    for epoch in (1, 2, 3):
        progress.on_trial_result(0, [a, b], a, {"epoch": epoch, "val_accuracy": 0.1 * epoch})
    a.last_result = {"final": 1, "test_accuracy": 0.75}
    progress.on_trial_complete(0, [a, b], a)
    progress.on_trial_error(0, [a, b], b)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[0/4] c1 fold 1: started (1 running)")
    # Epoch 1 is printed (first report), epoch 2 is throttled, epoch 3 is the last one.
    epochs = [line for line in lines if ": epoch " in line]
    assert [e.split(": epoch ")[1].split(",")[0] for e in epochs] == ["1/3", "3/3"]
    assert "val accuracy 0.300" in epochs[-1]
    assert "[1/4] c1 fold 1: test accuracy 0.750; c1: 1/2 folds" in lines[-2]
    assert lines[-1].startswith("[2/4] c2 fold 1: FAILED, see /tmp/err.txt")
    assert "\r" not in out.getvalue()  # no redrawing in a log file


def test_on_a_terminal_a_status_line_shows_the_running_trials():
    out = io.StringIO()
    progress = ProgressCallback(total_trials=2, epochs=10, folds=1, stream=out, tty=True)
    a = _trial("a", "c1", 1)
    progress.on_step_begin(0, [a])
    progress.on_trial_start(0, [a], a)
    progress.on_trial_result(0, [a], a, {"epoch": 4, "val_accuracy": 0.61})
    status = out.getvalue().rsplit("\r\033[K", 1)[-1]
    assert status.startswith("[0/2 done] c1 f1 e4/10 val 0.61 |") and "elapsed" in status


def test_time_left_comes_from_measured_trials_and_the_running_ones_progress():
    progress = ProgressCallback(total_trials=4, epochs=10, folds=2, stream=io.StringIO(), tty=False)
    assert progress.eta_seconds() is None
    progress.done, progress.durations = 2, [100.0, 100.0]
    progress.running = {"x": {"epoch": 5, "config": {}}}
    # 4 - 2 done - 0.5 of the running one = 1.5 trials left, at 100 s each, 1 at a time.
    assert progress.eta_seconds() == 150.0


def test_time_left_does_not_jump_between_one_trial_ending_and_the_next_starting():
    progress = ProgressCallback(total_trials=6, epochs=10, folds=3, stream=io.StringIO(), tty=False)
    a, b, c = _trial("a", "c1", 1), _trial("b", "c2", 1), _trial("c", "c1", 2)
    progress.on_step_begin(0, [a, b])
    progress.on_trial_start(0, [a, b], a)
    progress.on_trial_start(0, [a, b], b)
    progress.durations = [100.0]
    progress.done = 1
    del progress.running["a"]  # a ended; c has not started yet
    between = progress.eta_seconds()
    progress.on_trial_start(0, [a, b, c], c)
    # 6 - 1 done = 5 trials left at 100 s each, 2 at a time, before and after c starts.
    assert between == progress.eta_seconds() == 250.0


def test_a_restored_callback_recounts_from_tunes_trials():
    progress = ProgressCallback(total_trials=3, epochs=1, folds=3, stream=io.StringIO(), tty=False)
    restored = pickle.loads(pickle.dumps(progress))
    restored.stream = io.StringIO()
    restored.on_step_begin(0, [_trial("a", "c1", 1, "TERMINATED"), _trial("b", "c1", 2, "ERROR"), _trial("c", "c1", 3)])
    assert (restored.done, restored.failed, restored.folds_done["c1"]) == (1, 1, 1)
