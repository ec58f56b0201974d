"""The package as users install it: a wheel built from the repository, installed into a
fresh virtual environment, scores the Sleep-EDF excerpt from another folder.

The third-party dependencies are not reinstalled: a ``.pth`` file in the new
environment's site-packages names this environment's site-packages. A folder named in a
``.pth`` joins ``sys.path`` but the ``.pth`` files inside it are not run, so this checkout's
editable install does not leak in (checked: ``sleepstream.__file__`` lies in the new
environment). Measured on the 2-core build machine: the whole file in 8.2 s
(``.venv/bin/python -m pytest -q -s tests/test_packaging.py``, which also prints the
install-and-score time, 7.2 s).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from sleepnet.user_dirs import DATA_DIR_ENV, data_dir, demo_recording_path

REPO = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                              "data", "out", "demo-out", "results")


def run(cmd: list, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the source tree (no stale build/ folder)."""
    src = tmp_path_factory.mktemp("src") / "sleepstream"
    shutil.copytree(REPO, src, ignore=SKIP)
    dist = tmp_path_factory.mktemp("dist")
    # No build isolation: the build backend (setuptools) of this environment, no download.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, "."], src)
    (whl,) = dist.glob("sleepstream-*.whl")
    return whl


@pytest.mark.lsl
def test_wheel_ships_weights_and_parameters_and_not_benchmarks_or_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("sleepstream-")}
    assert tops == {"sleepnet", "streamer", "scorer", "replay", "sleepstream", "weights"}, tops
    for f in ("weights/model_weights.pth", "weights/config.json", "weights/label_map.json", "weights/MODEL_CARD.md",
              "weights/model.txt", "weights/gru.npz", "sleepnet/sim/simulation_params.json"):
        assert any(n == f or (n.startswith("weights/") and n.endswith("/" + Path(f).name)) for n in names), f


@pytest.mark.lsl
def test_wheel_installed_in_a_fresh_venv_scores_the_excerpt_from_another_folder(wheel, shared_data, tmp_path):
    t0 = time.monotonic()
    new = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", new], tmp_path)
    new_py = new / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", new_py, "install", "--no-deps", "--no-index", "-q", wheel], tmp_path)
    new_site = Path(run([new_py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        tmp_path).stdout.strip())
    (new_site / "_current_env_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env[DATA_DIR_ENV] = str(tmp_path / "cache")
    where = run([new_py, "-c", "import sleepstream, sleepnet, weights, torch; from sleepnet.sim.parameters import load_params; "
                               "load_params(); print(sleepstream.__file__); print(sleepnet.__file__); "
                               "print(weights.__file__)"], elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(new) for p in where), where
    probe = run([new_py, "-c", "import importlib.util as u; print(u.find_spec('benchmarks'), u.find_spec('tests'))"],
                elsewhere, env=env).stdout.split()
    assert probe == ["None", "None"], "benchmarks and tests must not be installed"
    excerpt = (shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf").resolve()
    run([new / "bin" / "sleepstream", "score", excerpt, "--out", "stages.csv", "--quiet"], elsewhere, env=env)
    with open(elsewhere / "stages.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(10))
    assert all(r["stage"] in ("W", "N1", "N2", "N3", "REM") for r in rows)
    import sleepstream

    assert [r["stage"] for r in rows] == sleepstream.stage(excerpt).stages.tolist()   # same as this checkout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["stages.csv"]
    print(f"wheel install + score from another folder: {time.monotonic() - t0:.1f} s")


def test_generated_files_go_to_the_user_data_dir_or_where_the_user_says(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "mine"))
    assert demo_recording_path() == tmp_path / "mine" / "demo-night.npz"
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert data_dir() == tmp_path / "xdg" / "sleepstream"
    assert not demo_recording_path().is_relative_to(REPO)
