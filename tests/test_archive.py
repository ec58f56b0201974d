"""Scoring an archive: many nights through `sleepstream score` on a real Dask LocalCluster
(two worker processes) and on local worker processes, with the shipped model, simulated
EDF+ nights, the real Sleep-EDF excerpt and a corrupt file.

Every night scored in the crowd must equal `sleepstream score` run on it alone; a second
run reuses what is finished; one bad file fails alone; a worker killed in the middle of a
night loses only that night, which is scored again; a night that hangs (a FIFO nobody
writes to as its recording) fails alone, timed out, and its worker is killed or restarted;
each worker loads the model once; the cohort table is written whole or not at all and is
safe to open in a spreadsheet.
"""
from __future__ import annotations

import csv
import errno
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from live_helpers import wait_for

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
HANG = "hang.edf"                  # a FIFO nobody writes to: reading it blocks for ever (a hung night)
NIGHT_TIMEOUT_S = 5                # --night-timeout of the runs with a hung night
# Recordings whose names a spreadsheet would run as formulas (cohort.csv's night column).
FORMULA_NAMES = ('=HYPERLINK("mailto:a@b.example","click").edf', "-2+3.edf", "@SUM(A1).edf")
# A short night that visits every stage (codes 0=W 1=N1 2=N2 3=N3 4=REM), 30 min.
PLAN = np.array([0] * 6 + [1] * 4 + [2] * 14 + [3] * 10 + [2] * 6 + [4] * 14 + [0] * 6, dtype=np.int8)


def run_cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "sleepstream.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def _fifo(folder: Path) -> Path:
    path = folder / HANG
    os.mkfifo(path)
    return path


def _has_reader(fifo: Path) -> bool:
    """True when a process has ``fifo`` open for reading (a night still blocked on it)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return False
        raise
    os.close(fd)     # the reader gets end of file: the hung night ends
    return True


def _fsize_limit(n_bytes: int):
    """preexec_fn: the child may write no file past ``n_bytes`` (EFBIG: Python ignores
    SIGXFSZ), as a full disk would fail its writes; needs no root."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))


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
    """The archive, the real excerpt's folder and a night that hangs, scored once on the
    cluster with --night-timeout: (proc, out, the hung night's FIFO, the workers before)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    address, client, _marker = cluster
    out = tmp_path_factory.mktemp("scored")
    hang = _fifo(tmp_path_factory.mktemp("hang"))
    before = set(client.scheduler_info()["workers"])
    proc = run_cli("score", archive, SHARED_DATA / "sleep-edf", hang, "--scheduler", address, "--out", out, "--quiet",
                   "--night-timeout", NIGHT_TIMEOUT_S)
    return proc, out, hang, before


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["night"]: r for r in read_cohort(out / "cohort.csv")}


def _stages(csv_path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(csv_path)))


def assert_each_worker_loaded_the_model_once(out: Path, n_scored: int) -> None:
    """The cohort in ``out`` has ``n_scored`` scored nights, each from a worker that had
    loaded the model once (``model_loads`` 1)."""
    ok = [r for r in _rows(out).values() if r["status"] == "scored"]
    assert len(ok) == n_scored and {r["model_loads"] for r in ok} == {"1"}, \
        [(r["worker"], r["model_loads"]) for r in ok]


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


@pytest.mark.lsl
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


@pytest.mark.lsl
def test_a_bad_jobs_count_is_refused_before_the_out_folder_is_made(tmp_path):
    proc = run_cli("score", tmp_path / "x.edf", tmp_path / "y.edf", "--out", tmp_path / "new", "--jobs", "0",
                   timeout=60)
    assert proc.returncode == 2 and "--jobs must be at least 1" in proc.stderr, proc.stderr
    assert not (tmp_path / "new").exists()


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


def test_a_per_epoch_normalised_night_is_refused_by_a_uv_model_and_scored_as_score_does_by_the_scale_free_one(
        tmp_path):
    """The design's z-scored npz in an archive: the default model (absolute band powers) refuses
    it in one line naming the model to use, instead of scoring what it cannot read; the
    scale-free model scores it with the normalised quality rules, stage for stage as
    ``score`` does it alone (:func:`sleepnet.batch.score_recording` with those rules)."""
    from sleepnet.archive import model_identity, plan_jobs, score_night
    from sleepnet.batch import score_recording
    from sleepnet.io.recordings import read_recording, write_windowed_npz
    from sleepnet.normalised import SCALE_FREE_MODEL, design_normalisation, quality_thresholds
    from sleepnet.sim.night import simulate_night
    from sleepnet.weights import load_model

    sim = simulate_night(0.5, seed=11)
    path = tmp_path / "zscored.npz"
    write_windowed_npz(path, design_normalisation(sim.eeg_uv, sim.sfreq), sim.labels)
    for out in ("default", "scale-free"):
        (tmp_path / out).mkdir()
    (job,), _ = plan_jobs(find_nights([str(path)]), tmp_path / "default", "EEG Fpz-Cz", model_identity())
    row = score_night(job)
    assert row.status == "failed" and "per-epoch normalised signal (every epoch's SD is 1)" in row.error
    assert SCALE_FREE_MODEL in row.error and "\n" not in row.error and not job.stages_csv.exists()

    (job,), _ = plan_jobs(find_nights([str(path)]), tmp_path / "scale-free", "EEG Fpz-Cz",
                          model_identity(SCALE_FREE_MODEL))
    row = score_night(job)
    alone = score_recording(read_recording(path), load_model(SCALE_FREE_MODEL), quality_thresholds(True))
    assert row.status == "scored" and row.epochs == len(alone) == 60
    with open(job.stages_csv) as f:
        assert [r["stage"] for r in csv.DictReader(f)] == [p.stage for p in alone]
    assert row.epochs_scored == sum(p.scored for p in alone) > 50     # µV rules would call them flat



def test_a_rerun_asking_for_another_channel_or_normalisation_scores_the_night_again(tmp_path):
    """A finished night is reused only for the same request: an archive scored on Fpz-Cz and
    scored again with ``--channel 'EEG Pz-Oz'`` gets Pz-Oz's stages, not Fpz-Cz's kept
    from the first run (before: reused, the row still saying Fpz-Cz); the same channel
    again is reused; ``--normalized`` after a run without it scores again."""
    from edfio import Edf, EdfSignal

    from sleepnet.archive import model_identity, plan_jobs, score_night
    from sleepnet.sim.night import simulate_hypnogram

    a, b = simulate_hypnogram(PLAN[:20], 5), simulate_hypnogram(np.roll(PLAN, 9)[:20], 6)
    n = int(len(a.eeg_uv) // a.sfreq * a.sfreq)
    signals = [EdfSignal(x.eeg_uv[:n].astype(np.float64), a.sfreq, label=label, physical_dimension="uV",
                         physical_range=(-500.0, 500.0)) for x, label in ((a, "EEG Fpz-Cz"), (b, "EEG Pz-Oz"))]
    Edf(signals, data_record_duration=1.0).write(tmp_path / "two.edf")
    nights, out = find_nights([str(tmp_path / "two.edf")]), tmp_path / "out"
    out.mkdir()

    def plan(channel: str, normalized: bool | None = None):
        return plan_jobs(nights, out, channel, model_identity(), normalized=normalized)

    def stages(job) -> list[str]:
        with open(job.stages_csv) as f:
            return [r["stage"] for r in csv.DictReader(f)]

    (job,), _ = plan("EEG Fpz-Cz")
    assert score_night(job).channel == "EEG Fpz-Cz"
    fpz = stages(job)
    assert plan("EEG Fpz-Cz")[0] == []                      # the same request again: reused
    jobs, reused = plan("EEG Pz-Oz")
    assert reused == [] and len(jobs) == 1, "another channel must not reuse the Fpz-Cz night"
    row = score_night(jobs[0])
    assert row.channel == "EEG Pz-Oz" and stages(jobs[0]) != fpz
    assert plan("EEG Pz-Oz")[0] == []                       # the same request again: reused
    assert len(plan("EEG Pz-Oz", normalized=True)[0]) == 1  # another normalisation: scored again


# --------------------------------------------------------------------------- the cluster


@pytest.mark.slow
@pytest.mark.lsl
def test_cluster_scores_every_night_as_score_does_alone(scored, tmp_path):
    proc, out, _hang, _before = scored
    assert proc.returncode == 1, proc.stderr          # two nights failed: the corrupt one, the hung one
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


@pytest.mark.lsl
def test_cohort_rows_hold_the_nights_figures(scored):
    _proc, out, _hang, _before = scored
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


@pytest.mark.lsl
def test_a_corrupt_file_fails_alone_with_one_line(scored):
    proc, out, _hang, _before = scored
    rows = _rows(out)
    bad = rows["corrupt"]
    assert bad["status"] == "failed" and "truncated" in bad["error"] and "\n" not in bad["error"]
    failed_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]
    assert sorted(failed_lines) == sorted(f"failed: {rows[n]['error']}" for n in ("corrupt", "hang"))
    assert "Traceback" not in proc.stderr
    assert not (out / "corrupt_stages.csv").exists()


@pytest.mark.lsl
def test_a_hung_night_fails_alone_on_the_cluster_and_its_worker_is_restarted(scored, cluster):
    proc, out, hang, before = scored
    rows = _rows(out)
    assert rows["hang"]["status"] == "failed"
    assert rows["hang"]["error"] == f"{hang}: timed out after {NIGHT_TIMEOUT_S} s (--night-timeout)"
    assert sum(r["status"] == "scored" for r in rows.values()) == 5        # the others went on
    assert "restarting that worker" in proc.stderr and "was not restarted" not in proc.stderr, proc.stderr
    _address, client, _marker = cluster
    wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "two workers again")
    assert set(client.scheduler_info()["workers"]) != before        # the hung worker was replaced...
    assert not _has_reader(hang)                                    # ...and its blocked read went with it


@pytest.mark.lsl
def test_each_dask_worker_loads_the_model_once(scored):
    _proc, out, _hang, _before = scored
    assert_each_worker_loaded_the_model_once(out, 5)


@pytest.mark.lsl
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


@pytest.mark.slow
@pytest.mark.lsl
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


@pytest.mark.lsl
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


@pytest.mark.lsl
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


@pytest.mark.lsl
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


# --------------------------------------------------------------------------- a hung night, formulas, full disks


@pytest.fixture(scope="module")
def local_scored(archive, tmp_path_factory):
    """Nights named as spreadsheet formulas, a labelled night and a night that hangs, scored
    on two local workers with --night-timeout: (proc, src, out, the hung night's FIFO)."""
    src = tmp_path_factory.mktemp("local-src")
    for name in FORMULA_NAMES:
        shutil.copy(archive / "bedroom.edf", src / name)
    for name in ("SIM0001E0-PSG.edf", "SIM0001EC-Hypnogram.edf"):
        shutil.copy(archive / name, src / name)
    hang = _fifo(tmp_path_factory.mktemp("local-hang"))
    out = tmp_path_factory.mktemp("local-out")
    proc = run_cli("score", src, hang, "--out", out, "--jobs", "2", "--quiet", "--night-timeout", NIGHT_TIMEOUT_S,
                   timeout=120)
    return proc, src, out, hang


@pytest.mark.lsl
def test_a_hung_night_fails_alone_on_local_workers(local_scored):
    proc, _src, out, hang = local_scored
    assert proc.returncode == 1, proc.stderr
    rows = _rows(out)
    assert rows["hang"]["status"] == "failed"
    assert rows["hang"]["error"] == f"{hang}: timed out after {NIGHT_TIMEOUT_S} s (--night-timeout)"
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")] == [f"failed: {rows['hang']['error']}"]
    assert sorted(n for n, r in rows.items() if r["status"] == "scored") == sorted(
        ["SIM0001E0-PSG", *(Path(n).stem for n in FORMULA_NAMES)])
    assert "killing the worker" in proc.stderr
    assert not _has_reader(hang)        # the worker blocked on it is gone


@pytest.mark.lsl
def test_each_local_worker_loads_the_model_once(local_scored):
    _proc, _src, out, _hang = local_scored
    assert_each_worker_loaded_the_model_once(out, 4)


@pytest.mark.lsl
def test_cohort_cells_a_spreadsheet_would_run_are_escaped_and_numbers_stay_numbers(local_scored):
    from sleepnet.archive.cohort import COLUMNS, _cell
    from sleepnet.io.exports import spreadsheet_unescape

    _proc, _src, out, _hang = local_scored
    with open(out / "cohort.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == list(COLUMNS)
    night = {r[0] for r in table[1:]}
    assert {"'" + Path(n).stem for n in FORMULA_NAMES} <= night          # text a spreadsheet shows as text
    for r in table[1:]:
        for cell in r:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), r
    formula_row = next(r for r in table[1:] if r[0].startswith("'=HYPERLINK"))
    assert float(formula_row[COLUMNS.index("duration_s")]) > 0          # numbers are written as numbers
    assert (out / f"{Path(FORMULA_NAMES[0]).stem}_stages.csv").exists()
    assert (_cell(-1.5), _cell(3), _cell(math.nan), _cell("-1.5"), _cell("+x")) == ("-1.5", "3", "", "'-1.5", "'+x")
    assert {Path(n).stem for n in FORMULA_NAMES} <= set(_rows(out))        # read_cohort gives the names back
    for text in ("=1+1", "'=1+1", "''@x", "'plain", "plain", "-"):
        assert spreadsheet_unescape(_cell(text)) == text


@pytest.mark.lsl
def test_a_full_disk_while_writing_the_cohort_table_is_one_line_and_keeps_the_previous_one(local_scored,
                                                                                          tmp_path):
    _proc, src, out, _hang = local_scored
    again = tmp_path / "out"
    shutil.copytree(out, again)
    previous = {p.name: p.read_bytes() for p in again.iterdir()}
    # Every night of src is finished: the run writes only the table (4 rows), past the limit.
    proc = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(src), "--out", str(again),
                           "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          preexec_fn=_fsize_limit(1000))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{again / 'cohort.csv'}: cannot write (File too large)" in lines[0], proc.stderr
    assert {p.name: p.read_bytes() for p in again.iterdir()} == previous     # whole, and no temp file left


@pytest.mark.lsl
def test_a_night_whose_files_cannot_be_written_fails_alone_and_keeps_its_previous_files(local_scored, tmp_path):
    _proc, src, out, _hang = local_scored
    again = tmp_path / "out"
    shutil.copytree(out, again)
    previous = {p.name: p.read_bytes() for p in again.iterdir()}
    script = ("import json, sys; from sleepnet.archive import find_nights, model_identity, plan_jobs, score_night; "
              "(job,), _ = plan_jobs(find_nights([sys.argv[1]]), sys.argv[2], 'EEG Fpz-Cz', model_identity(), "
              "force=True); print(json.dumps(score_night(job).as_dict()))")
    proc = subprocess.run([sys.executable, "-c", script, str(src / "SIM0001E0-PSG.edf"), str(again)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, preexec_fn=_fsize_limit(2000))
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["status"] == "failed"
    assert row["error"].startswith(f"{again / 'SIM0001E0-PSG_stages.csv'}: cannot write (File too large)")
    assert {p.name: p.read_bytes() for p in again.iterdir()} == previous     # whole, and no temp file left


@pytest.mark.lsl
@pytest.mark.parametrize("setup,expect", [
    # an @list kept in the output folder under the table's name
    (lambda d: ((d / "out" / "cohort.csv").write_text("../night.edf\n"), [f"@{d / 'out' / 'cohort.csv'}"])[1],
     "(its cohort.csv): is the list"),
    # a hypnogram that is, by a hard link, the night's stage CSV
    (lambda d: (os.link(d / "night-hyp.txt", d / "out" / "night_stages.csv"),
                [str(d / "night.edf"), "--hypnogram", str(d / "out" / "night_stages.csv")])[1],
     "(night night's night_stages.csv): is the hypnogram"),
])
def test_an_archive_output_that_is_an_input_is_refused_before_anything_is_written(archive, tmp_path, setup, expect):
    shutil.copy(archive / "bedroom.edf", tmp_path / "night.edf")
    shutil.copy(archive / "bedroom-hypnogram.txt", tmp_path / "night-hyp.txt")
    (tmp_path / "out").mkdir()
    inputs = setup(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    proc = run_cli("score", *inputs, "--out", tmp_path / "out", "--quiet", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0] and "would overwrite an input" in lines[0], proc.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before   # nothing written


@pytest.mark.lsl
def test_a_tls_scheduler_is_reached_with_dasks_own_tls_settings(archive, tmp_path):
    """`--scheduler tls://...` connects through Dask's configuration (distributed.comm.tls.*,
    as DASK_DISTRIBUTED__COMM__TLS__... variables or YAML set it), with real certificates."""
    import shutil as sh

    import dask
    from distributed import LocalCluster
    from distributed.security import Security

    from sleepnet.archive import DaskRunner, model_identity, plan_jobs

    if sh.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificates")
    for cmd in (["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                 "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sleepstream-test-ca"],
                ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "node.key",
                 "-out", "node.csr", "-subj", "/CN=sleepstream-test-node"],
                ["x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                 "node.pem", "-days", "2"]):
        subprocess.run(["openssl", *cmd], cwd=tmp_path, check=True, capture_output=True)
    ca, cert, key = (str(tmp_path / n) for n in ("ca.pem", "node.pem", "node.key"))
    sec = Security(require_encryption=True, tls_ca_file=ca, tls_scheduler_cert=cert, tls_scheduler_key=key,
                   tls_worker_cert=cert, tls_worker_key=key, tls_client_cert=cert, tls_client_key=key)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://", host="127.0.0.1",
                      security=sec, dashboard_address=":0") as lc:
        assert lc.scheduler_address.startswith("tls://")
        with pytest.raises(SleepstreamError, match="needs Dask's TLS settings"):
            DaskRunner.connect(lc.scheduler_address)
        (tmp_path / "out").mkdir()
        jobs, _ = plan_jobs(find_nights([str(archive / "bedroom.edf")]), tmp_path / "out", "EEG Fpz-Cz",
                            model_identity())
        with dask.config.set({"distributed.comm.tls.ca-file": ca, "distributed.comm.tls.client.cert": cert,
                              "distributed.comm.tls.client.key": key}):
            with DaskRunner.connect(lc.scheduler_address, timeout_s=20) as runner:
                rows = list(runner.run(jobs))
    assert [r.status for r in rows] == ["scored"], rows[0].error


@pytest.mark.lsl
def test_workers_set_glibcs_allocation_thresholds_themselves():
    """Under Dask's worker environment (MALLOC_TRIM_THRESHOLD_=65536, which turns glibc's
    dynamic thresholds off), a night-sized array is mapped and unmapped anew each time (a
    page fault per 4 KiB); after the worker's own set-up it comes back from the heap."""
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    script = """
import resource, numpy as np
from sleepnet.archive.night import prepare_worker_process
def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = np.ones(2_000_000)      # 16 MB, as a night's signal
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
before = faults()
assert prepare_worker_process()
faults()                            # the heap grows once
print(before, faults())
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"})
    assert proc.returncode == 0, proc.stderr
    before, after = map(int, proc.stdout.split())
    assert before >= 20 and after < before / 10, (before, after)     # each time vs (almost) never


def test_default_night_timeout_grows_with_the_file_and_has_a_floor():
    from sleepnet.archive.night import TIMEOUT_FLOOR_S, default_night_timeout_s

    assert default_night_timeout_s(0) == default_night_timeout_s(6_800_000) == TIMEOUT_FLOOR_S
    assert default_night_timeout_s(1_000_000_000) == pytest.approx(20 * 0.11 * 1000)   # 1 GB: 2200 s


@pytest.mark.lsl
def test_a_run_pauses_the_workers_profiler_and_resumes_it(cluster, archive, tmp_path):
    from sleepnet.archive import DaskRunner, model_identity, plan_jobs
    from sleepnet.archive.runners import _pause_profiler, _resume_profiler

    _address, client, _marker = cluster

    def running():
        return set(map(tuple, client.run(lambda dask_worker: tuple(
            dask_worker.periodic_callbacks[k].is_running() for k in ("profile", "profile-cycle"))).values()))

    assert running() == {(True, True)}
    jobs, _ = plan_jobs(find_nights([str(archive / "bedroom.edf")]), tmp_path, "EEG Fpz-Cz", model_identity())
    rows = DaskRunner(client).run(jobs)
    assert next(rows).status == "scored"
    assert running() == {(False, False)}                  # paused while the run lasts
    assert list(rows) == []
    assert running() == {(True, True)}                    # and resumed after it
    client.run(_pause_profiler)
    client.run(_pause_profiler)                           # two runs at once
    client.run(_resume_profiler)
    assert running() == {(False, False)}                  # the other run still goes on
    client.run(_resume_profiler)
    assert running() == {(True, True)}
