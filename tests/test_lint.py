"""The house's linter passes (issue 22 item 4): ``ruff check`` with the configuration in
``pyproject.toml`` (pycodestyle, pyflakes, import order, bugbear, pyupgrade) over the whole
repository: the packages, ``benchmarks/``, ``tests/`` and ``docs/``. It starts ruff as a
process, so it is marked ``lsl`` (the tier of tests that start processes); ``ruff check .``
is the same check by hand."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def ruff_command() -> list[str]:
    """``ruff`` beside this interpreter (the project's virtualenv), else on PATH."""
    here = Path(sys.executable).with_name("ruff")
    if here.exists():
        return [str(here)]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    return [found]


@pytest.mark.lsl
def test_ruff_finds_nothing_in_the_repository():
    r = subprocess.run([*ruff_command(), "check", "--no-cache", "--output-format", "concise", "."], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
