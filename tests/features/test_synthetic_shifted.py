"""The ``shifted`` synthetic presets: every recording's character drawn from the middle quarter
of its class's ranges; fold 1's sound events play 4 semitones higher and 26% faster, fold 2's
4 semitones lower and 21% slower; the other folds as drawn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from features import synthetic
from features.synthetic.plan import SHIFT_SEMITONES
from features.synthetic.sounds import SOUNDS
from features.synthetic.writer import NarrowDraws
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


def test_only_folds_1_and_2_change():
    shifted = synthetic.PRESETS["shifted"]
    unshifted = dataclasses.replace(shifted, fold_speed=())
    assert shifted.speed(1) == pytest.approx(2 ** (4 / 12)) and shifted.speed(2) == pytest.approx(2 ** (-4 / 12))
    assert all(shifted.speed(f) == 1.0 for f in range(3, 11))
    plan = synthetic.build_plan(shifted, seed=0)
    assert plan == synthetic.build_plan(synthetic.PRESETS["bench"], seed=0)  # same recordings, slices, formats
    by_fold = {}
    for rec in plan:
        by_fold.setdefault(rec.fold, rec)
    for fold in (1, 2, 3, 7):
        rec = by_fold[fold]
        audio_s = [a for _, a in synthetic.render_recording(rec, shifted, seed=0)]
        audio_u = [a for _, a in synthetic.render_recording(rec, unshifted, seed=0)]
        same = all(np.array_equal(a, b) for a, b in zip(audio_s, audio_u, strict=True))
        assert same == (fold not in (1, 2)), fold


def test_narrow_draws_keep_the_middle_of_each_range_and_the_random_stream():
    plain, narrow = np.random.default_rng(5), NarrowDraws(np.random.default_rng(5), 0.25)
    for low, high in ((300.0, 500.0), (0.5, 1.2), (-6.0, 2.0)):
        wide = plain.uniform(low, high)
        got = narrow.uniform(low, high)
        middle = (low + high) / 2
        assert got == pytest.approx(middle + (wide - middle) * 0.25)
        assert abs(got - middle) <= (high - low) / 8 + 1e-12
    sized = narrow.uniform(0.5, 1.0, 4)
    assert sized.shape == (4,) and np.all(np.abs(sized - 0.75) <= 0.0625 + 1e-12)
    plain.uniform(0.5, 1.0, 4)
    # Every other method is the generator's own, and the stream stays in step.
    assert narrow.integers(0, 100) == plain.integers(0, 100) and narrow.random() == plain.random()


def test_the_shifted_sets_draws_are_narrow():
    """A car horn's pitch (f0 drawn from 300-500 Hz) spans the middle quarter: 375-425 Hz."""
    draws = [SOUNDS["car_horn"].draw(NarrowDraws(np.random.default_rng(s), 0.25))["f0"] for s in range(200)]
    assert min(draws) >= 375 and max(draws) <= 425 and max(draws) - min(draws) > 40


def test_fold_speed_is_validated_and_round_trips():
    preset = synthetic.PRESETS["tiny-shifted"]
    again = synthetic.SyntheticPreset.from_dict(preset.to_dict())
    assert again == preset and again.fold_speed == preset.fold_speed
    # Presets without shifts keep their dataset marker: no fold_speed or draw_spread key at all.
    assert not {"fold_speed", "draw_spread"} & set(synthetic.PRESETS["demo"].to_dict())
    with pytest.raises(ValueError, match="draw_spread"):
        synthetic.SyntheticPreset(draw_spread=0.0)
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
