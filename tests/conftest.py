"""Shared test set-up: LSL for this machine only, one LSL session per test run, paths
to ../shared/data (tests that need it skip with a reason where it is absent)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sleepstream.lsl_config import SESSION_ENV, configure_lsl

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# One LSL session per test run, for this process and the CLI subprocesses it starts,
# so parallel runs (or a developer's live session) never see each other's streams.
os.environ.setdefault(SESSION_ENV, f"sleepstream-test-{uuid.uuid4().hex[:12]}")
configure_lsl()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def unique_name() -> str:
    """A stream name and source_id no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}"
