"""Bad input, end to end: every case of ``benchmarks.bad_input_cases.CASES`` (the table the
README shows, printed by ``python -m benchmarks.bad_inputs``) built with real files, run through
its real entry point, and checked for the specific message or the documented behaviour.

The predict rows load TensorFlow and an (untrained) model logged to MLflow: marked slow. The rows
that need a full disk mount a 1 MiB tmpfs and are skipped when that is not possible (not root).
"""

from __future__ import annotations

import pytest

from benchmarks.bad_input_cases import CASES
from benchmarks.bad_inputs import Env, run_case


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("bad-input-shared"))


def _param(case):
    return pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.needs == "model" else [])


def test_every_kind_of_the_issue_has_a_case():
    kinds = " ".join(c.kind for c in CASES)
    for kind in ("missing metadata CSV", "wrong CSV header", "fold 0 / 11", "unknown class", "classID / class mismatch",
                 "duplicate row", "file name not matching", "missing audio", "empty audio file", "truncated WAV header",
                 "garbage bytes", "text file named .wav", "NaN / inf", "0.05 s clip", "silence", "192 kHz", "8-bit",
                 "4-bit IMA ADPCM", "stereo", "1-hour recording", "spaces and non-ASCII", "unknown key", "empty choice",
                 "unwritable cache", "unwritable Ray storage", "unwritable tracking", "full disk"):
        assert kind in kinds, kind
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_gets_its_specific_message_or_documented_behaviour(case, env, tmp_path, request):
    if case.needs == "ray":
        request.getfixturevalue("ray_local")
    outcome = run_case(case, tmp_path, env)
    if outcome.handled is None:
        pytest.skip(outcome.message)
    assert outcome.handled, outcome.report()
