"""python -m benchmarks.bad_inputs [--smoke-test] [--only TEXT]

Runtime: about 10 minutes on 2 busy cores (load average 10-20; not yet timed on an idle
machine): a local Ray for the extraction rows, TensorFlow and an untrained model logged to a
temporary MLflow store for the predict rows, one hour of audio classified. ``--smoke-test`` runs
only the rows that need neither Ray nor TensorFlow (seconds).

Every kind of bad input the project handles (``CASES``, in ``benchmarks.bad_input_cases``), each
built for real in a fresh temporary folder (a CSV, WAV files written with soundfile or as raw
bytes, folders that cannot be written), run through its real entry point in this process (the
1-hour recording in a child process, for its peak RSS), and checked against the specific message
the user must see (file, CSV line, what is wrong, what to do) or the documented behaviour. The
sweep rows run with ``--dry-run``: the same plan-time checks as every sweep, then exit. Prints
``kind | entry point | handled | message``; ``tests/test_bad_input.py`` runs the same cases, so
the README table and the test cannot drift.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.headless_ray import headless_ray_args

ROOT = Path(__file__).resolve().parents[1]
MAX_LINE = 200


@dataclass(frozen=True)
class Built:
    """A case's input on disk: the entry point's arguments, the placeholders of its expected
    messages (``<tmp>``, the case folder, is always there) and an optional check after the run
    (given the output, returns what is wrong, or None)."""

    argv: tuple[str, ...]
    fill: dict[str, str] = field(default_factory=dict)
    check: Callable[[str], str | None] | None = None


@dataclass(frozen=True)
class Case:
    kind: str
    entry: str  # a key of ENTRY_POINTS
    build: Callable[[Path, contextlib.ExitStack], Built | str]  # a str: why it cannot be built here
    rc: int  # the exit code the user must get
    expect: tuple[str, ...]  # what the output must contain (placeholders filled)

    @property
    def id(self) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in f"{self.entry.split('.')[-1]} {self.kind}".lower())
        return "-".join(filter(None, slug.split("-")))

    @property
    def needs(self) -> str:
        """What the entry point needs started: "", "ray" or "model" (TensorFlow + MLflow)."""
        return ENTRY_POINTS[self.entry][1]


@dataclass(frozen=True)
class Outcome:
    case: Case
    handled: bool | None  # None: not run here (message says why)
    message: str  # what the user saw: the relevant lines, <tmp> for the case folder
    problems: tuple[str, ...] = ()
    output: str = ""

    def report(self) -> str:
        return "\n".join([f"{self.case.kind} via {self.case.entry}: {', '.join(self.problems)}", self.output])


class Env:
    """What entry points share across cases: a local Ray, an untrained model in MLflow."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._model: tuple[str, str] | None = None

    def ray(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=2, **headless_ray_args(), log_to_driver=False, configure_logging=False)

    def model(self) -> tuple[str, str]:
        """(tracking URI, model URI) of an untrained audio model, logged in a child process so
        that this process's MLflow settings stay untouched."""
        if self._model is None:
            folder = self.work / "model"
            folder.mkdir(parents=True, exist_ok=True)
            code = "import json, sys; from benchmarks.bad_inputs import log_untrained_model as f; print(json.dumps(f(sys.argv[1])))"
            done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                                  cwd=ROOT, env=_child_env(), check=False)
            if done.returncode != 0:
                raise RuntimeError(f"logging the test model failed:\n{done.stderr[-3000:]}")
            self._model = tuple(json.loads(done.stdout.strip().splitlines()[-1]))
        return self._model


def log_untrained_model(folder: str) -> tuple[str, str]:
    """A small untrained network (seeded) as the project's audio pyfunc, in a sqlite store."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import mlflow
    import tf_keras as keras

    from features.config import FeatureConfig
    from features.us8k import CLASS_NAMES
    from model.cnn import build_cnn
    from model.config import TrainConfig
    from model.data import Normaliser
    from model.predictor import AudioClassifier
    from orchestration.audio_model import log_audio_model

    keras.utils.set_random_seed(0)
    config = FeatureConfig()
    network = build_cnn((*config.shape, 1), len(CLASS_NAMES), TrainConfig(filters=(4, 4, 8, 8)))
    classifier = AudioClassifier(network, config, Normaliser.identity(config.n_mels), CLASS_NAMES)
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name("bad-inputs")
    experiment = found.experiment_id if found else client.create_experiment(
        "bad-inputs", artifact_location=str(Path(folder) / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    run = client.create_run(experiment)
    return uri, log_audio_model(run.info.run_id, classifier.model, classifier.settings())


def _child_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}


# ---------------------------------------------------------------------------------------------
# Entry points: each runs argv as the command line would and returns (exit code, output).


def _capture(main: Callable[[list[str]], int], argv: Sequence[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue() + out.getvalue()


def _dataset(argv: Sequence[str], env: Env) -> tuple[int, str]:
    from features.dataset import main

    return _capture(main, argv)


def _extract(argv: Sequence[str], env: Env) -> tuple[int, str]:
    from features.extract import main

    env.ray()
    return _capture(main, argv)


def _sweep(argv: Sequence[str], env: Env) -> tuple[int, str]:
    from orchestration.cv_sweep import main

    return _capture(main, [*argv, "--dry-run"])


def _predict(argv: Sequence[str], env: Env) -> tuple[int, str]:
    import mlflow

    from orchestration.predict import main

    tracking, model = env.model()
    previous = mlflow.get_tracking_uri()
    try:
        return _capture(main, ["--model", model, "--tracking-uri", tracking, *argv])
    finally:
        mlflow.set_tracking_uri(previous)


_RSS_CHILD = r"""
import contextlib, io, json, resource, sys, tracemalloc
from orchestration.predict import main
tracking, model, short, long = sys.argv[1:5]
def run(path, trace=False):
    out = io.StringIO()
    if trace:
        tracemalloc.start()
    with contextlib.redirect_stdout(out):
        code = main(["--model", model, "--tracking-uri", tracking, path])
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else 0.0
    tracemalloc.stop()
    return code, out.getvalue(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, traced
print(json.dumps([run(short), run(long, trace=True)]))
"""


def _predict_rss(argv: Sequence[str], env: Env) -> tuple[int, str]:
    """argv = (a 4-s file, the long file, MB the long file takes decoded at once): the predict
    entry point on both in one child process, with its peak RSS after each."""
    tracking, model = env.model()
    short, long, whole_mb = argv
    done = subprocess.run([sys.executable, "-c", _RSS_CHILD, tracking, model, short, long], capture_output=True,
                          text=True, cwd=ROOT, env=_child_env(), check=False)
    if done.returncode != 0:
        return done.returncode, done.stderr[-3000:]
    (_, _, before, _), (code, out, after, traced) = json.loads(done.stdout.strip().splitlines()[-1])
    return code, (f"{out.strip()}\nPython + numpy memory peaked at {traced:.0f} MB during the long file "
                  f"(decoded at once: {float(whole_mb):.0f} MB); peak RSS {before:.0f} MB after a 4-s file, "
                  f"{after:.0f} MB after the long one (+{after - before:.0f} MB, TensorFlow's warm-up included)")


ENTRY_POINTS: dict[str, tuple[Callable[[Sequence[str], Env], tuple[int, str]], str]] = {
    "features.dataset": (_dataset, ""),
    "features.extract": (_extract, "ray"),
    "orchestration.cv_sweep": (_sweep, ""),
    "orchestration.predict": (_predict, "model"),
    "orchestration.predict, peak RSS": (_predict_rss, "model"),
}


# ---------------------------------------------------------------------------------------------
# Running a case.


def run_case(case: Case, folder: Path, env: Env) -> Outcome:
    """Build the case's input under ``folder``, run its entry point, judge what the user got."""
    with contextlib.ExitStack() as stack:
        built = case.build(folder, stack)
        if isinstance(built, str):
            return Outcome(case, None, f"not run: {built}")
        fill = {"<tmp>": str(folder), **{f"<{k}>": v for k, v in built.fill.items()}}
        try:
            code, output = ENTRY_POINTS[case.entry][0](built.argv, env)
        except Exception as exc:  # the entry point crashed, or what it needs (Ray, the model) did not start
            code, output = -1, f"crashed: {type(exc).__name__}: {exc}"
        expected = [_fill(e, fill) for e in case.expect]
        problems = [f"exit code {code}, expected {case.rc}"] if code != case.rc else []
        problems += [f"missing from the output: {e!r}" for e in expected if e not in output]
        if built.check is not None and (trouble := built.check(output)):
            problems.append(trouble)
        message = _shown(output, expected).replace(str(folder), "<tmp>")
        return Outcome(case, not problems, message, tuple(problems), output)


def _fill(text: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        text = text.replace(key, value)
    return text


def _shown(output: str, expected: list[str]) -> str:
    """The output lines the expectations are about (else the first lines), one line of text."""
    lines = [line.strip() for line in output.replace("\r", "\n").splitlines() if line.strip()]
    chosen = [line for line in lines if any(e in line for e in expected)] or lines[:2]
    unique = list(dict.fromkeys(chosen))
    return " / ".join(line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..." for line in unique)


def table(outcomes: Sequence[Outcome]) -> str:
    rows = ["| kind | entry point | handled | message |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        handled = "n/a" if o.handled is None else ("yes" if o.handled else "**NO**")
        message = o.message.replace("|", "\\|")
        rows.append(f"| {o.case.kind} | `python -m {o.case.entry.split(',')[0]}` | {handled} | {message} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bad_input_cases import CASES
    from benchmarks.machine import describe

    p = argparse.ArgumentParser(prog="python -m benchmarks.bad_inputs", description="Bad inputs, end to end.")
    p.add_argument("--smoke-test", action="store_true", help="only the cases that need neither Ray nor TensorFlow")
    p.add_argument("--only", default="", help="only the cases whose kind or entry point contains this text")
    args = p.parse_args(argv)
    cases = [c for c in CASES if (not args.smoke_test or not c.needs) and args.only in f"{c.kind} {c.entry}"]
    print(describe())
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        env = Env(Path(tmp) / "shared")
        for i, case in enumerate(cases):
            folder = Path(tmp) / f"case{i:02d}"
            folder.mkdir(parents=True)
            outcomes.append(run_case(case, folder, env))
            print(f"{'ok ' if outcomes[-1].handled else 'n/a' if outcomes[-1].handled is None else 'BAD'} "
                  f"{case.kind} ({case.entry})", file=sys.stderr, flush=True)
    print(table(outcomes))
    ran = [o for o in outcomes if o.handled is not None]
    print(f"\n{sum(o.handled for o in ran)} of {len(ran)} kinds of bad input handled"
          + (f"; {len(outcomes) - len(ran)} not run here" if len(ran) < len(outcomes) else ""))
    for o in ran:
        if not o.handled:
            print(o.report(), file=sys.stderr)
    return 0 if all(o.handled for o in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
