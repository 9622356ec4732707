"""The ``shifted`` synthetic presets: fold 1's sound events play 4 semitones higher and 26%
faster, fold 2's 4 semitones lower and 21% slower; every other fold is as in ``bench``."""

from __future__ import annotations

import numpy as np
import pytest

from features import synthetic
from features.synthetic.plan import SHIFT_SEMITONES
from features.synthetic.sounds import SOUNDS
from features.us8k import CLASS_NAMES

SR = 22_050


def _median_frequency(x: np.ndarray, below: float) -> float:
    """The frequency under which half the signal's power (below ``below`` Hz) lies."""
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    cumulative = np.cumsum(power[freqs < below])
    return float(freqs[np.searchsorted(cumulative, cumulative[-1] / 2)])


# Sounds with a steady spectrum (tonal or stationary noise); the others (melodies, barks,
# shots, hammer blows) move too, but their median frequency also varies from render to render.
@pytest.mark.parametrize("class_name", ["air_conditioner", "car_horn", "engine_idling"])
@pytest.mark.parametrize("fold", [1, 2])
def test_a_fold_speed_factor_moves_the_spectrum_by_its_semitones(class_name, fold):
    factor = synthetic.PRESETS["shifted"].speed(fold)
    n = 3 * SR
    for seed in (0, 1):
        params = SOUNDS[class_name].draw(np.random.default_rng(seed))
        plain = SOUNDS[class_name].render(params, n, SR, np.random.default_rng(9))
        moved = SOUNDS[class_name].render(params, n, round(SR / factor), np.random.default_rng(9))
        assert len(moved) == len(plain) == n  # the clip keeps its length
        # Compare the same band of the source: below 6 kHz of the unshifted rendering.
        semitones = 12 * np.log2(_median_frequency(moved, 6000 * factor) / _median_frequency(plain, 6000))
        expected = SHIFT_SEMITONES if fold == 1 else -SHIFT_SEMITONES
        assert semitones == pytest.approx(expected, abs=0.5), (class_name, seed)


def test_only_folds_1_and_2_change_and_the_other_folds_are_bench():
    shifted, bench = synthetic.PRESETS["shifted"], synthetic.PRESETS["bench"]
    assert shifted.speed(1) == pytest.approx(2 ** (4 / 12)) and shifted.speed(2) == pytest.approx(2 ** (-4 / 12))
    assert all(shifted.speed(f) == 1.0 for f in range(3, 11))
    plan_s, plan_b = synthetic.build_plan(shifted, seed=0), synthetic.build_plan(bench, seed=0)
    assert plan_s == plan_b  # same recordings, slices, formats
    by_fold = {}
    for rec in plan_s:
        by_fold.setdefault(rec.fold, rec)
    for fold in (1, 2, 3, 7):
        rec = by_fold[fold]
        audio_s = [a for _, a in synthetic.render_recording(rec, shifted, seed=0)]
        audio_b = [a for _, a in synthetic.render_recording(rec, bench, seed=0)]
        same = all(np.array_equal(a, b) for a, b in zip(audio_s, audio_b, strict=True))
        assert same == (fold not in (1, 2)), fold


def test_fold_speed_is_validated_and_round_trips():
    preset = synthetic.PRESETS["tiny-shifted"]
    again = synthetic.SyntheticPreset.from_dict(preset.to_dict())
    assert again == preset and again.fold_speed == preset.fold_speed
    # Presets without shifts keep their dataset marker: no fold_speed key at all.
    assert "fold_speed" not in synthetic.PRESETS["demo"].to_dict()
    for bad, message in [(((0, 1.2),), "in 1..10"), (((1, 1.2), (1, 0.8)), "distinct"),
                         (((3, 3.0),), r"\[0.5, 2\]"), (((3, 1.0),), "not 1"), ((3,), "pairs")]:
        with pytest.raises(ValueError, match=message):
            synthetic.SyntheticPreset(fold_speed=bad)


def test_every_class_still_renders_at_the_shifted_rates():
    for name in CLASS_NAMES:
        for factor in dict(synthetic.PRESETS["shifted"].fold_speed).values():
            x = SOUNDS[name].render(SOUNDS[name].draw(np.random.default_rng(1)), SR, round(SR / factor),
                                    np.random.default_rng(2))
            assert x.shape == (SR,) and np.isfinite(x).all() and np.abs(x).max() > 0, name
