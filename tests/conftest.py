"""Shared test set-up: LSL for this machine only, one LSL session per test run, paths
to ../shared/data (tests that need it skip with a reason where it is absent)."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from sleepstream.lsl_config import CONFIG_ENV, write_machine_config

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# One LSL session per test run: a this-machine-only lsl_api.cfg with a SessionID of its
# own, named by LSLAPICFG before any LSL call, for this process and every process it
# starts (the sleepstream commands take it as the user's configuration and use it as
# it is), so parallel runs, or a developer's own LSL apps, never see each other's
# streams. The interop tests (test_lsl_interop.py) run their processes without it, in
# liblsl's default session, and keep apart by unique stream names and source_ids.
_CFG_DIR = Path(tempfile.mkdtemp(prefix="sleepstream-test-lsl-"))
atexit.register(shutil.rmtree, _CFG_DIR, True)
RUN_SESSION = f"sleepstream-test-{uuid.uuid4().hex[:12]}"
os.environ[CONFIG_ENV] = str(write_machine_config(_CFG_DIR / "lsl_api.cfg", RUN_SESSION))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model():
    """The shipped default model (the real one, as users get it)."""
    from sleepnet.weights import CONFIG_FILE, default_weights_dir, load_model

    if not (default_weights_dir() / CONFIG_FILE).exists():
        pytest.fail(f"{default_weights_dir()} holds no model: the default model must be shipped")
    return load_model()


@pytest.fixture(scope="session")
def seeded_model(tmp_path_factory):
    """A real CausalSleepNet with seeded random weights, saved and loaded through the
    weights folder code: for properties that hold for any weights (causality, shapes)."""
    import torch

    from sleepnet.models.cnn_lstm import CausalSleepNet, ModelConfig
    from sleepnet.preprocess import PreprocessConfig
    from sleepnet.weights import load_model, save_model

    torch.manual_seed(1234)
    d = tmp_path_factory.mktemp("seeded-weights")
    save_model(d, CausalSleepNet(ModelConfig()).eval(), PreprocessConfig(), "seeded-test")
    return load_model(d)


def eeg_like(seconds: float, sfreq: float, seed: int = 0, amp_uv: float = 30.0):
    """A 1/f-ish random EEG-like signal in µV (float32) for tests that need any signal."""
    import numpy as np
    from scipy import signal as sps

    rng = np.random.default_rng(seed)
    n = int(round(seconds * sfreq))
    white = rng.normal(0, 1, n)
    b, a = sps.butter(1, 2.0, fs=sfreq)
    pink = sps.lfilter(b, a, white) * 6 + white * 0.3
    alpha = np.sin(2 * np.pi * 10 * np.arange(n) / sfreq) * (rng.random() + 0.5)
    x = pink + alpha
    return (x / x.std() * amp_uv).astype(np.float32)
