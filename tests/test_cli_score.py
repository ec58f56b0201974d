"""`sleepstream score` end to end as a user runs it, and its one-line errors."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import eeg_like

from sleepnet.io.recordings import write_continuous_npz


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sleepstream.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def _one_clean_line(proc):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.lsl
def test_scores_the_real_sleep_edf_excerpt_against_its_hypnogram(shared_data, seeded_model, tmp_path):
    out = tmp_path / "preds.csv"
    proc = run_cli("score", shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf",
                   "--hypnogram", shared_data / "sleep-edf" / "SC4001EC-Hypnogram.edf",
                   "--weights", seeded_model.source, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 10
    assert list(rows[0]) == ["epoch", "onset_s", "stage", "p_W", "p_N1", "p_N2", "p_N3", "p_REM",
                             "confidence", "flags"]
    assert [("warmup" in r["flags"]) for r in rows] == [True] * 4 + [False] * 6
    for r in rows:
        p = [float(r[f"p_{s}"]) for s in ("W", "N1", "N2", "N3", "REM")]
        assert sum(p) == pytest.approx(1, abs=1e-5) and float(r["confidence"]) == pytest.approx(max(p), abs=1e-6)
    metrics = json.loads((tmp_path / "preds_metrics.json").read_text())
    assert metrics["n_epochs"] == 10 and metrics["support"]["W"] == 10   # all ten labelled W
    assert (tmp_path / "preds_confusion.csv").exists()


@pytest.mark.lsl
def test_npz_labels_are_used_and_unscored_epochs_excluded(seeded_model, tmp_path):
    labels = np.array([0, 0, -1, 2, 2, 2], dtype=np.int8)
    write_continuous_npz(tmp_path / "n.npz", eeg_like(180, 256, seed=4), 256, labels)
    proc = run_cli("score", tmp_path / "n.npz", "--weights", seeded_model.source,
                   "--out", tmp_path / "n.csv", "--quiet")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "n_metrics.json").read_text())
    assert m["n_epochs"] == 5 and m["n_excluded"] == 1


@pytest.mark.lsl
@pytest.mark.parametrize("setup,expect", [
    (lambda d: d / "missing.edf", "no such file"),
    (lambda d: (np.savez(d / "x.npz", nothing=np.zeros(3)), d / "x.npz")[1], "no signal found"),
    (lambda d: ((d / "x.txt").write_text("hello"), d / "x.txt")[1], "unknown recording format"),
])
def test_bad_recordings_give_one_line_and_exit_2(tmp_path, setup, expect):
    line = _one_clean_line(run_cli("score", setup(tmp_path), "--quiet"))
    assert expect in line


@pytest.mark.lsl
def test_missing_channel_lists_the_channels(shared_data, tmp_path):
    line = _one_clean_line(run_cli("score", shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf",
                                   "--channel", "C3", "--out", tmp_path / "o.csv"))
    assert "no channel matching 'C3'" in line and "EEG Fpz-Cz" in line


@pytest.mark.lsl
def test_unwritable_out_and_bad_weights_are_one_line(seeded_model, tmp_path):
    write_continuous_npz(tmp_path / "n.npz", eeg_like(60, 100), 100)
    line = _one_clean_line(run_cli("score", tmp_path / "n.npz", "--out", tmp_path / "nope" / "o.csv"))
    assert "does not exist" in line
    (tmp_path / "w").mkdir()
    line = _one_clean_line(run_cli("score", tmp_path / "n.npz", "--weights", tmp_path / "w",
                                   "--out", tmp_path / "o.csv"))
    assert "config.json" in line


@pytest.mark.lsl
def test_help_shows_an_example():
    proc = run_cli("score", "--help")
    assert proc.returncode == 0 and "example:" in proc.stdout and "sleepstream score" in proc.stdout


def _fsize_limit(n_bytes):
    """preexec_fn: the child may write no file past ``n_bytes`` (writes past it fail with
    EFBIG: Python ignores SIGXFSZ), as a full disk would fail them; needs no root."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))


@pytest.fixture
def excerpt(shared_data, tmp_path):
    """A copy of the real Sleep-EDF excerpt and its hypnogram, in tmp_path."""
    import shutil

    rec, hyp = tmp_path / "night.edf", tmp_path / "night-hyp.edf"
    shutil.copy(shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf", rec)
    shutil.copy(shared_data / "sleep-edf" / "SC4001EC-Hypnogram.edf", hyp)
    return rec, hyp


@pytest.mark.parametrize("make_out,hyp_name,expect", [
    (lambda rec: rec, None, "--out {rec}: is the recording"),
    (lambda rec: (rec.parent / "link.csv").symlink_to(rec) or rec.parent / "link.csv", None, "is the recording"),
    (lambda rec: os.link(rec, rec.parent / "hard.csv") or rec.parent / "hard.csv", None, "is the recording"),
    (lambda rec: rec.parent / "p.csv", "p_confusion.csv", "its confusion file p_confusion.csv): is the hypnogram"),
])
def test_an_out_that_is_an_input_is_refused_and_nothing_is_written(excerpt, make_out, hyp_name, expect, capsys):
    from sleepstream.cli import main

    rec, hyp = excerpt
    if hyp_name:
        hyp = hyp.rename(rec.parent / hyp_name)
    before = {p.name: p.read_bytes() for p in rec.parent.iterdir()}
    out = make_out(rec)
    listed = sorted(p.name for p in rec.parent.iterdir())
    code = main(["score", str(rec), "--hypnogram", str(hyp), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expect.format(rec=rec) in err, err
    assert sorted(p.name for p in rec.parent.iterdir()) == listed          # nothing new
    assert {n: (rec.parent / n).read_bytes() for n in before} == before      # nothing changed


@pytest.mark.lsl
@pytest.mark.parametrize("limit,failing", [(300, "preds.csv"), (800, "preds_metrics.json")])
def test_a_write_that_fails_midway_is_one_line_and_keeps_the_previous_output(excerpt, tmp_path, limit, failing):
    rec, hyp = excerpt
    out = tmp_path / "preds.csv"
    first = run_cli("score", rec, "--hypnogram", hyp, "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    previous = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(previous["preds.csv"]) < 800 < len(previous["preds_metrics.json"]) and len(previous["preds.csv"]) > 300
    proc = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(rec), "--hypnogram", str(hyp),
                           "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=120,
                          preexec_fn=_fsize_limit(limit))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING:")]
    assert len(errors) == 1 and f"{tmp_path / failing}: cannot write (File too large)" in errors[0], proc.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == previous   # whole, and no temp file left


def test_a_model_whose_tree_points_back_at_itself_is_one_line_not_a_hang(excerpt, tmp_path, capsys):
    import re
    import shutil

    from sleepnet.weights import resolve_weights_dir
    from sleepstream.cli import main

    w = tmp_path / "w"
    shutil.copytree(resolve_weights_dir("feature-gbm-sleepedf-v1"), w)
    text = (w / "model.txt").read_text()
    text = re.sub(r"^left_child=(\d+) (\d+)", r"left_child=\1 1", text, count=1, flags=re.M)  # tree 0: node 1 -> node 1
    (w / "model.txt").write_text(text)
    code = main(["score", str(excerpt[0]), "--weights", str(w), "--out", str(tmp_path / "o.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Tree=0: node 1's left child points at itself" in err and len(err.strip().splitlines()) == 1
