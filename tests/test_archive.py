"""Scoring an archive: many nights through `sleepstream score` on a real Dask LocalCluster
(two worker processes) and on local worker processes, with the shipped model, simulated
EDF+ nights, the real Sleep-EDF excerpt and a corrupt file.

Every night scored in the crowd must equal `sleepstream score` run on it alone; a second
run reuses what is finished; one bad file fails alone; a worker killed in the middle of a
night loses only that night, which is scored again.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from sleepnet.archive import find_nights, pair_hypnogram, read_cohort
from sleepnet.archive.night import TEST_KILL_WORKER_ONCE_ENV
from sleepnet.errors import SleepstreamError
from sleepnet.report.sleep_stats import STAT_UNITS, sleep_statistics
from sleepnet.stages import STAGES
from sleepnet.weights import default_weights_dir

pytest.importorskip("distributed", reason="the archive tests need dask.distributed (pip install -e '.[test]')")

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(240)

DIE_ONCE = "die-once.edf"          # the night whose job kills its own worker, once (test hook)
# A short night that visits every stage (codes 0=W 1=N1 2=N2 3=N3 4=REM), 30 min.
PLAN = np.array([0] * 6 + [1] * 4 + [2] * 14 + [3] * 10 + [2] * 6 + [4] * 14 + [0] * 6, dtype=np.int8)


def run_cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "sleepstream.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def _write_night(path: Path, labels: np.ndarray, seed: int, flat_epochs: tuple[int, int] | None = None) -> np.ndarray:
    """A simulated EDF+ night; ``flat_epochs`` (first, end): epochs whose signal is 0 µV."""
    from dataclasses import replace

    from sleepnet.sim.night import simulate_hypnogram, write_night_edf

    night = simulate_hypnogram(labels, seed)
    if flat_epochs is not None:
        eeg = night.eeg_uv.copy()
        eeg[int(flat_epochs[0] * 30 * night.sfreq):int(flat_epochs[1] * 30 * night.sfreq)] = 0.0
        night = replace(night, eeg_uv=eeg)
    write_night_edf(path, night)
    return night.labels


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Simulated EDF+ nights named as Sleep-EDF (hypnograms as EDF+ annotations) and one
    by the generic rule (a text hypnogram), plus a truncated copy: a corrupt file."""
    from sleepnet.io.hypnogram_exports import write_edf_annotations

    d = tmp_path_factory.mktemp("archive")
    for i in range(3):
        labels = _write_night(d / f"SIM00{i}1E0-PSG.edf", np.roll(PLAN, 4 * i)[: 40 + 4 * i], seed=70 + i)
        write_edf_annotations(d / f"SIM00{i}1EC-Hypnogram.edf", labels)
    labels = _write_night(d / "bedroom.edf", PLAN[:50], seed=80, flat_epochs=(20, 23))   # 3 flat epochs
    (d / "bedroom-hypnogram.txt").write_text("\n".join(("W", "N1", "N2", "N3", "R")[c] for c in labels) + "\n")
    data = (d / "bedroom.edf").read_bytes()
    (d / "corrupt.edf").write_bytes(data[: len(data) // 3])
    return d


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real Dask LocalCluster of two worker processes. Its workers carry the test hook:
    the job of a recording named die-once.edf kills its worker once."""
    from distributed import Client, LocalCluster

    marker = tmp_path_factory.mktemp("hook") / "killed-once"
    old = os.environ.get(TEST_KILL_WORKER_ONCE_ENV)
    os.environ[TEST_KILL_WORKER_ONCE_ENV] = f"{DIE_ONCE}:{marker}"
    try:
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    finally:
        if old is None:
            os.environ.pop(TEST_KILL_WORKER_ONCE_ENV, None)
        else:
            os.environ[TEST_KILL_WORKER_ONCE_ENV] = old
    client = Client(lc)
    yield lc.scheduler_address, client, marker
    client.close()
    lc.close()


@pytest.fixture(scope="module")
def scored(archive, cluster, tmp_path_factory):
    """The archive and the real excerpt's folder, scored once on the cluster."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    address, _client, _marker = cluster
    out = tmp_path_factory.mktemp("scored")
    proc = run_cli("score", archive, SHARED_DATA / "sleep-edf", "--scheduler", address, "--out", out, "--quiet")
    return proc, out


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["night"]: r for r in read_cohort(out / "cohort.csv")}


def _stages(csv_path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(csv_path)))


def assert_same_stages(crowd: Path, alone: Path) -> None:
    a, b = _stages(crowd), _stages(alone)
    assert [r["stage"] for r in a] == [r["stage"] for r in b]
    assert [r["flags"] for r in a] == [r["flags"] for r in b]
    pa = np.array([[float(r[f"p_{s}"] or "nan") for s in STAGES] for r in a])
    pb = np.array([[float(r[f"p_{s}"] or "nan") for s in STAGES] for r in b])
    np.testing.assert_allclose(pa, pb, rtol=0, atol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------- pairing


def test_sleep_edf_and_generic_names_pair_with_their_hypnograms(tmp_path):
    for name in ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4011E0-PSG.edf", "SC4012E0-PSG.edf",
                 "SC4012EC-Hypnogram.edf", "night1.edf", "night1_hypnogram.csv", "night2.npz"):
        (tmp_path / name).write_bytes(b"")
    by_name = {n.recording.name: n for n in find_nights([str(tmp_path)])}
    assert sorted(by_name) == ["SC4001E0-PSG.edf", "SC4011E0-PSG.edf", "SC4012E0-PSG.edf", "night1.edf",
                               "night2.npz"]   # hypnograms are never taken as recordings
    assert by_name["SC4001E0-PSG.edf"].hypnogram.name == "SC4001EC-Hypnogram.edf"
    assert by_name["SC4011E0-PSG.edf"].hypnogram is None          # first 7 characters differ from SC4012
    assert by_name["SC4012E0-PSG.edf"].hypnogram.name == "SC4012EC-Hypnogram.edf"
    assert by_name["night1.edf"].hypnogram.name == "night1_hypnogram.csv"
    assert by_name["night2.npz"].hypnogram is None
    (tmp_path / "night1-hypnogram.txt").write_bytes(b"")
    hyp, problem = pair_hypnogram(tmp_path / "night1.edf")
    assert hyp is None and "2 hypnograms pair with it" in problem


def test_list_files_globs_and_clashing_names(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "night.edf").write_bytes(b"")
    (tmp_path / "a" / "truth.txt").write_text("W\n")
    (tmp_path / "list.txt").write_text("# recording, hypnogram\na/night.edf, a/truth.txt\n\nb/*.edf\n")
    nights = find_nights([f"@{tmp_path / 'list.txt'}"])
    assert [n.name for n in nights] == ["a_night", "b_night"]      # same stem: the folder goes in front
    assert nights[0].hypnogram == (tmp_path / "a" / "truth.txt").resolve() and nights[1].hypnogram is None
    assert len(find_nights([str(tmp_path / "*" / "night.edf"), str(tmp_path / "a" / "night.edf")])) == 2
    with pytest.raises(SleepstreamError, match="matches no recording"):
        find_nights([str(tmp_path / "*.bdf")])
    with pytest.raises(SleepstreamError, match="names the hypnogram of one recording"):
        find_nights([str(tmp_path / "a"), str(tmp_path / "b")], hypnogram=str(tmp_path / "a" / "truth.txt"))


@pytest.mark.parametrize("args,expect", [
    (lambda d: ["score", d / "x.edf", d / "y.edf"], "needs --out DIR"),
    (lambda d: ["score", str(d / "*.edf"), "--out", d / "o"], "matches no recording"),
    (lambda d: ["score", d / "x.edf", d / "y.edf", "--out", d / "f.csv"], "is a file"),
    (lambda d: ["score", d / "x.edf", d / "y.edf", "--out", d / "o", "--jobs", "0"], "--jobs must be at least 1"),
    (lambda d: ["score", f"@{d / 'none.txt'}", "--out", d / "o"], "cannot read the list"),
])
def test_archive_user_errors_are_one_line_and_exit_2(tmp_path, args, expect):
    (tmp_path / "f.csv").write_text("")
    (tmp_path / "o").mkdir()
    proc = run_cli(*args(tmp_path), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_an_unreachable_scheduler_is_one_clear_error():
    from sleepnet.archive import DaskRunner

    with pytest.raises(SleepstreamError, match="cannot reach a Dask scheduler"):
        DaskRunner.connect("tcp://127.0.0.1:9", timeout_s=1)


def test_a_worker_with_other_weights_than_the_run_refuses_the_night(archive, tmp_path):
    from dataclasses import replace

    from sleepnet.archive import model_identity, plan_jobs, score_night

    other = replace(model_identity(), weights_sha256="0" * 64)   # what a client with other weights would send
    (job,), _ = plan_jobs(find_nights([str(archive / "bedroom.edf")]), tmp_path, "EEG Fpz-Cz", other)
    row = score_night(job)
    assert row.status == "failed" and "are not the run's" in row.error
    assert not job.stages_csv.exists()


# --------------------------------------------------------------------------- the cluster


def test_cluster_scores_every_night_as_score_does_alone(scored, tmp_path):
    proc, out = scored
    assert proc.returncode == 1, proc.stderr          # one night failed
    rows = _rows(out)
    ok = {k: r for k, r in rows.items() if r["status"] == "scored"}
    assert sorted(ok) == ["SC4001E0-PSG-first300s", "SIM0001E0-PSG", "SIM0011E0-PSG", "SIM0021E0-PSG", "bedroom"]
    for name, r in ok.items():
        alone = tmp_path / f"{name}.csv"
        p = run_cli("score", r["recording"], "--hypnogram", r["hypnogram"], "--out", alone, "--quiet", timeout=120)
        assert p.returncode == 0, p.stderr
        assert_same_stages(out / f"{name}_stages.csv", alone)
        crowd_m = json.loads((out / f"{name}_stages_metrics.json").read_text())
        alone_m = json.loads((tmp_path / f"{name}_metrics.json").read_text())
        for key in ("recording", "hypnogram"):
            crowd_m.pop(key), alone_m.pop(key)
        assert crowd_m == alone_m
    assert (ok["bedroom"]["epochs_unscored"], ok["bedroom"]["unscored_reasons"]) == ("3", "flat:3")
    real = ok["SC4001E0-PSG-first300s"]
    assert Path(real["hypnogram"]).name == "SC4001EC-Hypnogram.edf"   # paired by the Sleep-EDF rule
    assert real["epochs"] == "10" and real["epochs_compared"] == "10"


def test_cohort_rows_hold_the_nights_figures(scored):
    _proc, out = scored
    rows = _rows(out)
    ids = {(r["model_id"], r["weights_sha256"]) for r in rows.values()}
    assert len(ids) == 1 and len(next(iter(ids))[1]) == 64
    for name, r in rows.items():
        if r["status"] != "scored":
            continue
        preds = _stages(out / f"{name}_stages.csv")
        codes = [STAGES.index(p["stage"]) if p["stage"] in STAGES else -1 for p in preds]
        stats = sleep_statistics(codes).as_dict()
        for key in STAT_UNITS:
            want = stats[key]
            got = float(r[key]) if r[key] else math.nan
            assert got == pytest.approx(want, rel=1e-5, nan_ok=True), (name, key)
        conf = [float(p["confidence"]) for p in preds if p["confidence"]]
        assert float(r["mean_confidence"]) == pytest.approx(np.mean(conf), rel=1e-5)
        assert int(r["epochs"]) == len(preds) == int(r["epochs_scored"]) + int(r["epochs_unscored"])
        assert float(r["duration_s"]) >= 30 * len(preds) and float(r["seconds"]) > 0
        assert float(r["kappa"]) == pytest.approx(
            json.loads((out / f"{name}_stages_metrics.json").read_text())["kappa"], rel=1e-5)
    pooled = json.loads((out / "cohort_agreement.json").read_text())
    summed = sum(np.array(json.loads((out / f"{n}_stages_metrics.json").read_text())["confusion"])
                 for n, r in rows.items() if r["status"] == "scored")
    assert pooled["nights"] == 5 and pooled["confusion"] == summed.tolist()
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out / "cohort.parquet")
    assert table.num_rows == len(rows) and table.column_names == list(next(iter(rows.values())))


def test_a_corrupt_file_fails_alone_with_one_line(scored):
    proc, out = scored
    bad = _rows(out)["corrupt"]
    assert bad["status"] == "failed" and "truncated" in bad["error"] and "\n" not in bad["error"]
    failed_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]
    assert failed_lines == [f"failed: {bad['error']}"]
    assert "Traceback" not in proc.stderr
    assert not (out / "corrupt_stages.csv").exists()


def test_a_worker_killed_mid_night_loses_only_that_night(cluster, archive, tmp_path):
    address, client, marker = cluster
    shutil.copy(archive / "bedroom.edf", tmp_path / DIE_ONCE)
    for name in ("SIM0001E0-PSG.edf", "SIM0011E0-PSG.edf"):
        shutil.copy(archive / name, tmp_path / name)
    out = tmp_path / "out"
    proc = run_cli("score", tmp_path, "--scheduler", address, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert marker.exists(), "the hook never killed a worker"
    killed_pid = int(marker.read_text())
    rows = _rows(out)
    assert {r["status"] for r in rows.values()} == {"scored"} and len(rows) == 3
    assert rows["die-once"]["worker"].split(":")[1] != str(killed_pid)  # scored again elsewhere
    reference = tmp_path / "alone.csv"
    p = run_cli("score", archive / "bedroom.edf", "--out", reference, "--quiet")
    assert p.returncode == 0, p.stderr
    assert_same_stages(out / "die-once_stages.csv", reference)
    deadline = time.time() + 30
    while len(client.scheduler_info()["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(client.scheduler_info()["workers"]) == 2   # the nanny brought the worker back


# --------------------------------------------------------------------------- local workers


def test_local_workers_rerun_reuses_finished_nights_and_force_rescores(archive, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("SIM0001E0-PSG.edf", "SIM0001EC-Hypnogram.edf", "bedroom.edf", "bedroom-hypnogram.txt",
                 "corrupt.edf"):
        shutil.copy(archive / name, src / name)
    out = tmp_path / "out"
    first = run_cli("score", src, "--out", out, "--jobs", "2", "--quiet")
    assert first.returncode == 1, first.stderr
    before = {n: r for n, r in _rows(out).items()}
    assert {n: r["status"] for n, r in before.items()} == {"SIM0001E0-PSG": "scored", "bedroom": "scored",
                                                          "corrupt": "failed"}
    mtime = (out / "bedroom_stages.csv").stat().st_mtime_ns
    again = run_cli("score", src, "--out", out, "--jobs", "2")
    assert again.returncode == 1, again.stderr
    rows = _rows(out)
    assert {n: r["status"] for n, r in rows.items()} == {"SIM0001E0-PSG": "reused", "bedroom": "reused",
                                                        "corrupt": "failed"}
    assert (out / "bedroom_stages.csv").stat().st_mtime_ns == mtime
    assert rows["bedroom"]["kappa"] == before["bedroom"]["kappa"]
    assert "2 reused" in again.stdout and "1 failed" in again.stdout
    # An edited hypnogram: that night alone is scored again.
    with open(src / "bedroom-hypnogram.txt", "a") as fh:
        fh.write("W\n")
    edited = run_cli("score", src, "--out", out, "--jobs", "1", "--quiet")
    assert {n: r["status"] for n, r in _rows(out).items()} == {"SIM0001E0-PSG": "reused", "bedroom": "scored",
                                                              "corrupt": "failed"}, edited.stderr
    # Other weights (a changed file in the weights folder): same model id, new hash -> scored again.
    weights = tmp_path / "weights"
    shutil.copytree(default_weights_dir(), weights)
    with open(weights / "MODEL_CARD.md", "a") as fh:
        fh.write("\nedited\n")
    third = run_cli("score", src, "--out", out, "--jobs", "1", "--weights", weights, "--quiet")
    assert third.returncode == 1, third.stderr
    assert {r["status"] for n, r in _rows(out).items() if n != "corrupt"} == {"scored"}
    forced = run_cli("score", src, "--out", out, "--jobs", "1", "--weights", weights, "--force", "--quiet")
    assert {r["status"] for n, r in _rows(out).items() if n != "corrupt"} == {"scored"}, forced.stderr


def test_local_worker_killed_mid_night_is_retried_and_others_are_kept(archive, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(archive / "bedroom.edf", src / DIE_ONCE)
    for name in ("SIM0001E0-PSG.edf", "SIM0011E0-PSG.edf", "SIM0021E0-PSG.edf"):
        shutil.copy(archive / name, src / name)
    marker = tmp_path / "killed-once"
    env = {**os.environ, TEST_KILL_WORKER_ONCE_ENV: f"{DIE_ONCE}:{marker}"}
    out = tmp_path / "out"
    proc = run_cli("score", src, "--out", out, "--jobs", "2", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists(), "the hook never killed a worker"
    rows = _rows(out)
    assert len(rows) == 4 and {r["status"] for r in rows.values()} == {"scored"}
    assert rows["die-once"]["worker"].split(":")[1] != marker.read_text()
    assert "scoring it again" in proc.stderr
    reference = tmp_path / "alone.csv"
    assert run_cli("score", archive / "bedroom.edf", "--out", reference, "--quiet").returncode == 0
    assert_same_stages(out / "die-once_stages.csv", reference)


def test_a_night_that_kills_its_worker_every_time_fails_alone(archive, tmp_path, monkeypatch):
    from sleepnet.archive import LocalRunner, model_identity, plan_jobs
    from sleepnet.archive.runners import WORKER_DIED

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(archive / "bedroom.edf", src / "poison.edf")
    for name in ("SIM0001E0-PSG.edf", "SIM0011E0-PSG.edf", "SIM0021E0-PSG.edf"):
        shutil.copy(archive / name, src / name)
    monkeypatch.setenv(TEST_KILL_WORKER_ONCE_ENV, "poison.edf:")    # no marker: it dies every time
    (tmp_path / "out").mkdir()
    jobs, _ = plan_jobs(find_nights([str(src)]), tmp_path / "out", "EEG Fpz-Cz", model_identity(), torch_threads=1)
    with LocalRunner(2, None, torch_threads=1) as runner:
        rows = {r.night: r for r in runner.run(jobs)}
    assert sorted(rows) == ["SIM0001E0-PSG", "SIM0011E0-PSG", "SIM0021E0-PSG", "poison"]
    assert rows["poison"].status == "failed" and WORKER_DIED in rows["poison"].error
    assert {r.status for n, r in rows.items() if n != "poison"} == {"scored"}


def test_ctrl_c_stops_cleanly_and_keeps_finished_nights(archive, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(150):   # hard links: distinct files, one copy on disk
        os.link(archive / "SIM0001E0-PSG.edf", src / f"n{i:03d}.edf")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sleepstream.cli", "score", src, "--out", out, "--jobs", "1",
                             "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list(out.glob("*_night.json")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    rows = _rows(out)
    finished = {p.name[: -len("_night.json")] for p in out.glob("*_night.json")}
    assert 1 <= len(rows) < 150 and set(rows) <= finished
    assert all(r["status"] == "scored" for r in rows.values())
