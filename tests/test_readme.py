"""The README's two opening commands stay true: CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands():
    main_job, tests = _readme_commands()
    assert main_job.endswith("python -m orchestration.cv_sweep")
    assert "pip install -e ." in main_job
    assert "pytest" in tests and ".[test]" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_readme_has_no_unfilled_placeholders():
    text = (ROOT / "README.md").read_text()
    for placeholder in ("DEMO_MINUTES", "DEMO_EPOCHS", "SUITE_MINUTES", "BENCHMARKS", "CLUSTER\n", "BAD_INPUT_TABLE"):
        assert placeholder not in text, placeholder
