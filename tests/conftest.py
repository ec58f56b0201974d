"""Shared test set-up: LSL for this machine only, one LSL session per test run (per xdist
worker), paths to ../shared/data (tests that need it skip with a reason where it is
absent), and the fast tier's guard (``tier_guard``: a test not marked ``lsl`` that opens
an LSL stream or starts a process fails)."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from tier_guard import pytest_runtest_call, pytest_runtest_setup, pytest_runtest_teardown  # noqa: F401

from sleepstream.lsl_config import CONFIG_ENV, write_machine_config

pytest_plugins = ("pytester",)     # tests/test_tiers.py runs the guard in an inner session

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
# sleepstream's machine-only configuration widens liblsl's [ports] PortRange (32 ports by
# default, shared by every LSL process on the machine) to MACHINE_PORT_RANGE: the suite's
# xdist workers together hold more than 32 outlets at once (test_ward's four beds alone: ~19),
# and a stream made once the 32 were taken was never found (sleepstream/lsl_config.py).
# Its ports start at SUITE_BASE_PORT, clear of liblsl's default ports (BasePort 16572), which
# are left to the tests taking the ``liblsl_default_ports`` fixture: their peers run with
# liblsl's own defaults (32 ports, KnownPeers resolvers ask no others), and when the suite's
# other processes held those ports, a peer's or our outlet landed on a port such a resolver
# never asks (CI: the plain inlet did not find the scorer's stage outlet).
SUITE_BASE_PORT = 17700
_cfg = write_machine_config(_CFG_DIR / "lsl_api.cfg", RUN_SESSION)
_cfg.write_text(_cfg.read_text().replace("[ports]\n", f"[ports]\nBasePort = {SUITE_BASE_PORT}\n", 1))
assert f"BasePort = {SUITE_BASE_PORT}" in _cfg.read_text()
os.environ[CONFIG_ENV] = str(_cfg)


def pytest_configure(config) -> None:
    """Caches a library fills once per machine by running a process are filled here, before
    any test: matplotlib lists the system's fonts with ``fc-list`` the first time it draws,
    which on a fresh machine would otherwise happen inside the first unmarked test that makes
    a figure, and the fast tier's guard would fail it."""
    try:
        import matplotlib
    except ImportError:
        return
    if not list(Path(matplotlib.get_cachedir()).glob("fontlist-*.json")):
        import matplotlib.font_manager  # noqa: F401  (builds the font list cache)


@pytest.fixture
def liblsl_default_ports() -> None:
    """This test's LSL processes bind liblsl's default ports (16572 and up), not the suite's
    (:data:`SUITE_BASE_PORT`): the tests taking it run one after another on one xdist worker
    (:data:`SHARED_FIXTURE_GROUPS`), so none of them finds those ports taken by another."""


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model():
    """The shipped default model (the real one, as users get it)."""
    from sleepnet.models.base import CONFIG_FILE
    from sleepnet.weights import default_weights_dir, load_model

    if not (default_weights_dir() / CONFIG_FILE).exists():
        pytest.fail(f"{default_weights_dir()} holds no model: the default model must be shipped")
    return load_model()


@pytest.fixture(scope="session")
def seeded_model(tmp_path_factory):
    """A real CausalSleepNet with seeded random weights, saved and loaded through the
    weights folder code: for properties that hold for any weights (causality, shapes)."""
    import torch

    from sleepnet.models.cnn_lstm import CausalSleepNet, ModelConfig
    from sleepnet.models.cnn_lstm_stager import save_model
    from sleepnet.preprocess import PreprocessConfig
    from sleepnet.weights import load_model

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


# Tests that share an expensive module-scoped fixture run on one xdist worker (``make test``
# runs ``pytest -n 4 --dist loadgroup``), one after another, so the fixture is built once, not
# once per worker. Keyed by the test file and the fixture's name; set-up cost beside each.
SHARED_FIXTURE_GROUPS = {
    "test_reliability.py::bad_runs": "bad-input-matrix",      # ~40 `sleepstream` processes: 30-60 s
    "test_archive.py::cluster": "dask-cluster",              # a Dask LocalCluster of 2 processes
    "test_archive.py::scored": "dask-cluster",               # the archive scored on it: ~15 s
    "test_archive.py::local_scored": "local-workers",        # the archive on local workers: ~13 s
    "test_packaging.py::wheel": "wheel",                     # a wheel built from a copy of the tree
    "test_quality.py::held_out_night": "quality-night",      # an 8-h simulated night, scored: ~5 s
    "test_simulate.py::night": "simulated-8h-night",         # an 8-h simulated night: ~5 s
    # not expensive, but they share liblsl's 32 default ports (liblsl_default_ports)
    "test_lsl_interop.py::liblsl_default_ports": "liblsl-default-ports",
    "test_device_streams.py::liblsl_default_ports": "liblsl-default-ports",
    "test_lsl_config.py::liblsl_default_ports": "liblsl-default-ports",
}


def shared_fixture_groups(tests_dir: Path = Path(__file__).parent) -> dict[str, str]:
    """``tests/FILE::test_name`` -> group, for each test function taking a fixture of
    :data:`SHARED_FIXTURE_GROUPS` as an argument (read statically: the xdist controller
    schedules by node id and collects nothing itself)."""
    import ast

    by_file: dict[str, dict[str, str]] = {}
    for key, group in SHARED_FIXTURE_GROUPS.items():
        file, fixture = key.split("::")
        by_file.setdefault(file, {})[fixture] = group
    out = {}
    for file, fixtures in by_file.items():
        tree = ast.parse((tests_dir / file).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                groups = sorted({fixtures[a.arg] for a in node.args.args if a.arg in fixtures})
                if groups:
                    out[f"{tests_dir.name}/{file}::{node.name}"] = "+".join(groups)
    return out


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:        # without pytest-xdist the suite runs in one process, as before
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:
    class SharedFixtureScheduling(LoadScopeScheduling):
        """``--dist loadgroup`` with the groups of :func:`shared_fixture_groups`; every other
        test is a unit of its own, as with ``--dist load``.

        pytest-xdist 3.8's own loadgroup reads ``xdist_group`` marks and renames
        ``item._nodeid``, which pytest 9's ``Item.nodeid`` no longer reads: its groups are
        silently spread over the workers (seen: the bad-input matrix built four times). The
        scope is worked out here, on the controller, from the node id instead.
        """

        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self.groups = shared_fixture_groups()

        def _split_scope(self, nodeid: str) -> str:
            group = self.groups.get(nodeid.split("[")[0])
            return f"group:{group}" if group else nodeid

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(config, log):
        if config.getvalue("dist") == "loadgroup":
            return SharedFixtureScheduling(config, log)
        return None
