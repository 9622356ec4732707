"""python -m benchmarks.racing [--sweeps 1000] [--configs 8 16 32] [--replay results.json ...]

Fold-racing simulation (not a test). Runtime: about a minute on 2 cores with the defaults; no
Ray, no TensorFlow. Drives the sweep's own racing code (``orchestration.racing.RaceState``)
with fold accuracies drawn from a model of real cross-validation results:

    accuracy(config, fold) = true_mean(config) + fold_effect(fold) + noise(config, fold)

true means uniform in [--low, --high] (a real sweep's spread), a fold effect shared by every
configuration (UrbanSound8K's folds differ by ~10 points: N(0, --fold-sd)), and per-(config,
fold) noise N(0, --noise-sd). Folds run in the same order for every configuration, fold by
fold across configurations, as the sweep runs them. Per sweep: fold trials run vs all
(configs x 10), whether the configuration with the best *true* mean was dropped, and the true
rank of the reported winner (best mean among the configurations that finished all folds).
The baseline in the same run is the full sweep (racing off): its reported winner's rank.

``--replay`` runs the same racing over the per-fold accuracies of recorded sweeps
(``results.json`` from ``python -m orchestration.cv_sweep``) and prints what it would have saved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import describe
from features.argtypes import positive_int
from orchestration.racing import METHODS, RaceState

FOLDS = tuple(range(1, 11))


@dataclass(frozen=True)
class Model:
    low: float = 0.55
    high: float = 0.80
    fold_sd: float = 0.05
    noise_sd: float = 0.025

    def draw(self, configs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """True means (configs,) and accuracies (configs, folds)."""
        means = rng.uniform(self.low, self.high, configs)
        fold_effect = rng.normal(0.0, self.fold_sd, len(FOLDS))
        noise = rng.normal(0.0, self.noise_sd, (configs, len(FOLDS)))
        return means, np.clip(means[:, None] + fold_effect[None, :] + noise, 0.0, 1.0)


@dataclass(frozen=True)
class Outcome:
    trials: int
    full: int
    best_dropped: bool
    winner_rank: int  # 1 = the true best
    full_winner_rank: int  # racing off, same draws


def race(accuracies: np.ndarray, method: str, alpha: float, min_folds: int) -> RaceState:
    state = RaceState(method, alpha, min_folds)
    for f, fold in enumerate(FOLDS):
        for c in range(len(accuracies)):
            name = f"c{c:03d}"
            if not state.is_out(name):
                state.record(name, fold, float(accuracies[c, f]))
    return state


def reported_winner(state: RaceState) -> int:
    complete = {c: s for c, s in state.scores.items() if len(s) == len(FOLDS) and not state.is_out(c)}
    return int(max(complete, key=lambda c: statistics.fmean(complete[c].values()))[1:])


def simulate(configs: int, sweeps: int, model: Model, method: str, alpha: float, min_folds: int, seed: int) -> list[Outcome]:
    rng = np.random.default_rng([seed, configs])
    out = []
    for _ in range(sweeps):
        means, accuracies = model.draw(configs, rng)
        ranks = {int(c): r + 1 for r, c in enumerate(np.argsort(-means))}
        raced = race(accuracies, method, alpha, min_folds)
        full = int(np.argmax(accuracies.mean(axis=1)))
        best = f"c{int(np.argmax(means)):03d}"
        trials = sum(len(s) for s in raced.scores.values())
        out.append(Outcome(trials, configs * len(FOLDS), raced.is_out(best), ranks[reported_winner(raced)], ranks[full]))
    return out


def summary_row(configs: int, outcomes: Sequence[Outcome]) -> dict[str, float]:
    return {
        "configs": configs,
        "saved": 1.0 - sum(o.trials for o in outcomes) / sum(o.full for o in outcomes),
        "best_dropped": statistics.fmean(o.best_dropped for o in outcomes),
        "winner_rank": statistics.fmean(o.winner_rank for o in outcomes),
        "full_winner_rank": statistics.fmean(o.full_winner_rank for o in outcomes),
        "winner_is_best": statistics.fmean(o.winner_rank == 1 for o in outcomes),
    }


def replay(path: Path, method: str, alpha: float, min_folds: int) -> dict[str, object]:
    payload = json.loads(path.read_text())
    table = {c["config_id"]: {int(f): a for f, a in c["fold_accuracy"].items()} for c in payload["configurations"]}
    folds = sorted({f for accs in table.values() for f in accs})
    state = RaceState(method, alpha, min_folds)
    for fold in folds:
        for cfg, accs in table.items():
            if fold in accs and not state.is_out(cfg):
                state.record(cfg, fold, accs[fold])
    full = sum(len(a) for a in table.values())
    ran = sum(len(s) for s in state.scores.values())
    best_full = max(table, key=lambda c: statistics.fmean(table[c].values()))
    return {"path": str(path), "configs": len(table), "trials": ran, "full": full,
            "dropped": sorted(state.dropped), "best_dropped": best_full in state.dropped}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.racing", description="Fold-racing simulation.")
    p.add_argument("--sweeps", type=positive_int, default=1000)
    p.add_argument("--configs", type=positive_int, nargs="+", default=[8, 16, 32])
    p.add_argument("--method", choices=[m for m in METHODS if m != "off"], default="wilcoxon")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--min-folds", type=positive_int, default=4)
    p.add_argument("--low", type=float, default=0.55)
    p.add_argument("--high", type=float, default=0.80)
    p.add_argument("--fold-sd", type=float, default=0.05)
    p.add_argument("--noise-sd", type=float, default=0.025)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replay", type=Path, nargs="*", default=[], help="results.json files of recorded sweeps")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model = Model(args.low, args.high, args.fold_sd, args.noise_sd)
    print(describe())
    print(f"racing {args.method}, alpha {args.alpha:g}, min folds {args.min_folds}; {args.sweeps} simulated sweeps "
          f"per size; true means U({model.low}, {model.high}), fold effect sd {model.fold_sd}, noise sd {model.noise_sd}")
    print(f"| {'configs':>7} | {'fold trials saved':>17} | {'true best dropped':>17} | {'winner rank (racing)':>20} | "
          f"{'winner rank (full)':>18} | {'s':>5} |")
    print(f"|{'-' * 8}:|{'-' * 18}:|{'-' * 18}:|{'-' * 21}:|{'-' * 19}:|{'-' * 6}:|")
    for configs in args.configs:
        started = time.perf_counter()
        row = summary_row(configs, simulate(configs, args.sweeps, model, args.method, args.alpha, args.min_folds, args.seed))
        print(f"| {configs:>7} | {row['saved']:>16.1%} | {row['best_dropped']:>16.1%} | {row['winner_rank']:>20.2f} | "
              f"{row['full_winner_rank']:>18.2f} | {time.perf_counter() - started:>5.1f} |")
    for path in args.replay:
        r = replay(path, args.method, args.alpha, args.min_folds)
        print(f"replay {r['path']}: {r['trials']}/{r['full']} fold trials ({1 - r['trials'] / r['full']:.0%} saved), "
              f"dropped {r['dropped'] or 'none'}; full sweep's winner dropped: {r['best_dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
