"""The night's report: reading night files, statistics, PNG, EDF+ and BIDS exports that
read back, agreement with a truth hypnogram, the features view and the CLI's errors."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import mne
import numpy as np
import pytest

from sleepnet.batch import score_recording
from sleepnet.errors import InputFileError
from sleepnet.io.exports import write_stage_csv
from sleepnet.io.hypnograms import read_hypnogram
from sleepnet.io.night_file import LIVE_COLUMNS, read_night
from sleepnet.io.recordings import read_recording, write_continuous_npz
from sleepnet.metrics import agreement
from sleepnet.predictions import StagePrediction
from sleepnet.report.night_report import write_report
from sleepnet.stages import STAGES, stage_code, stage_name, stage_runs
from sleepstream.cli import main

REPO = Path(__file__).resolve().parent.parent
# A short night: wake, light sleep, slow-wave sleep, REM, brief awakening, REM at the end.
CODES = np.array([0] * 6 + [1] * 2 + [2] * 10 + [3] * 12 + [2] * 6 + [4] * 8 + [0] * 2 + [2] * 6 + [4] * 8)


def _probs(code: int, rng: np.random.Generator) -> list[float]:
    if code < 0:
        return [math.nan] * 5
    p = 0.3 * rng.dirichlet(np.ones(5))
    p[code] += 0.7
    return p.tolist()


def _live_row(epoch: int, start: float, code: int, rng, flags: str = "", latency: float = 11.5) -> str:
    p = _probs(code, rng)
    conf = max(p) if code >= 0 else math.nan
    cells = [str(epoch), f"{start:.3f}", f"{start + 30:.3f}", stage_name(code), *(f"{v:.6f}" for v in p),
             f"{conf:.6f}", flags, f"{latency:.1f}"]
    return "\t".join(c.replace("nan", "nan") for c in cells)


def write_live_night(path: Path, codes: np.ndarray, seed: int = 0) -> Path:
    """A live hypnogram TSV in the issue's format, one session."""
    rng = np.random.default_rng(seed)
    lines = ["# session 1 started 2024-05-06T23:10:00 lsl_clock=5000.0 stream=test-eeg", "\t".join(LIVE_COLUMNS)]
    lines += [_live_row(i, 5000.0 + 30 * i, int(c), rng, "warmup" if i < 4 else "") for i, c in enumerate(codes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def synth_eeg(codes: np.ndarray, sfreq: float = 100.0, seed: int = 1) -> np.ndarray:
    """µV signal whose epochs carry each stage's textbook rhythm: alpha in W, theta in
    N1/REM, spindles in N2, large slow waves in N3."""
    rng = np.random.default_rng(seed)
    spe = int(sfreq * 30)
    t = np.arange(spe) / sfreq
    out = []
    for c in codes:
        x = 4 * rng.standard_normal(spe)
        ph = rng.uniform(0, 2 * np.pi)
        if c == 0:
            x += 20 * np.sin(2 * np.pi * 10 * t + ph) + 6 * rng.standard_normal(spe)
        elif c == 1:
            x += 15 * np.sin(2 * np.pi * 6 * t + ph)
        elif c == 2:
            x += 10 * np.sin(2 * np.pi * 5 * t + ph)
            for s0 in rng.uniform(0, 28, 4):
                m = (t >= s0) & (t < s0 + 1.0)
                x[m] += 30 * np.sin(2 * np.pi * 13 * (t[m] - s0)) * np.hanning(m.sum())
        elif c == 3:
            x += 80 * np.sin(2 * np.pi * 1.0 * t + ph) + 20 * np.sin(2 * np.pi * 2.0 * t)
        elif c == 4:
            x += 12 * np.sin(2 * np.pi * 5 * t + ph) + 5 * rng.standard_normal(spe)
        out.append(x)
    return np.concatenate(out).astype(np.float32)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """One report with everything: live night, truth hypnogram and recording."""
    d = tmp_path_factory.mktemp("night")
    night = write_live_night(d / "night.tsv", CODES)
    truth = CODES.copy()
    truth[[7, 20, 40]] = [2, 2, 2]                          # three disagreements
    truth_path = d / "truth.txt"
    truth_path.write_text("\n".join(stage_name(int(c)) for c in truth) + "\n")
    rec = d / "rec.npz"
    write_continuous_npz(rec, synth_eeg(CODES), 100.0)
    result = write_report(night, d / "report", hypnogram=truth_path, recording=rec)
    return result, truth


# --------------------------------------------------------------------------- night files

def test_live_night_with_a_restart_and_a_truncated_last_line(tmp_path):
    rng = np.random.default_rng(0)
    header = "\t".join(LIVE_COLUMNS)
    lines = ["# session 1 started 2024-05-06T23:00:00 lsl_clock=1000.0", header]
    lines += [_live_row(i, 1000.0 + 30 * i, c, rng) for i, c in enumerate([0, 0, 1, 2])]
    lines += [_live_row(4, 1120.0, -1, rng, "gap|flat")]
    # scorer restarted 2.5 min after epoch 4 ended; numbering goes on at 5
    lines += ["# session 2 started 2024-05-06T23:04:30 lsl_clock=1270.0"]
    lines += [_live_row(5 + i, 1270.0 + 30 * i, c, rng) for i, c in enumerate([2, 3, 4])]
    text = "\n".join(lines) + "\n" + _live_row(8, 1360.0, 4, rng)[:25]     # killed mid-write
    path = tmp_path / "night.tsv"
    path.write_text(text)
    n = read_night(path)
    assert n.kind == "live" and n.skipped_lines == 1
    # 5 epochs, then 4 slots (120 s) with no scorer, then the second session
    assert n.stages.tolist() == [0, 0, 1, 2, -1, -1, -1, -1, -1, 2, 3, 4]
    assert n.received.tolist() == [True] * 5 + [False] * 4 + [True] * 3
    assert n.epoch_numbers.tolist() == [0, 1, 2, 3, 4, -1, -1, -1, -1, 5, 6, 7]
    assert n.flags[4] == ("gap", "flat")
    assert n.start_wall == datetime(2024, 5, 6, 23, 0, 0)
    assert [s.slot for s in n.sessions] == [0, 9]
    assert np.isnan(n.probabilities[4]).all() and n.probabilities[3].argmax() == 2
    assert n.latency_ms[0] == pytest.approx(11.5)


def test_the_live_scorers_own_hypnogram_file_reads_back_across_a_crash_and_restart(tmp_path):
    from scorer.hypnogram_file import HypnogramFile
    from scorer.records import ScoredEpoch

    rng = np.random.default_rng(4)

    def rec(i: int, t0: float, code: int) -> ScoredEpoch:
        p = tuple(_probs(code, rng))
        return ScoredEpoch(i, t0 + 30 * i, t0 + 30 * i + 29.99, stage_name(code), p,
                           max(p) if code >= 0 else math.nan, ("gap",) if code < 0 else (), 3.0)

    path = tmp_path / "night.tsv"
    first = HypnogramFile(path, "eeg", "test-model")
    for i, c in enumerate([0, 1, 2, -1]):
        first.publish(rec(i, 1000.0, c))
    first.close()
    with open(path, "a") as fh:                       # killed in the middle of a row
        fh.write("4\t1120.0\t1149.9\tN")
    again = HypnogramFile(path, "eeg", "test-model")  # restarted 60 s after epoch 3 ended
    for i, c in enumerate([3, 4]):
        again.publish(rec(i, 1180.0, c))
    again.close()
    n = read_night(path)
    assert n.stages.tolist() == [0, 1, 2, -1, -1, -1, 3, 4]
    assert n.received.tolist() == [True] * 4 + [False] * 2 + [True] * 2
    assert n.epoch_numbers.tolist() == [0, 1, 2, 3, -1, -1, 4, 5]
    assert len(n.sessions) == 2 and n.start_wall is not None and n.skipped_lines == 1
    assert n.flags[3] == ("gap",) and n.latency_ms[6] == 3.0


def test_restart_on_a_clock_that_went_backwards_appends(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["\t".join(LIVE_COLUMNS), _live_row(0, 900.0, 2, rng), _live_row(1, 930.0, 2, rng),
             "# session 2 started after a reboot", _live_row(2, 12.0, 3, rng)]
    (tmp_path / "n.tsv").write_text("\n".join(lines) + "\n")
    n = read_night(tmp_path / "n.tsv")
    assert n.stages.tolist() == [2, 2, 3] and n.start_wall is None


def test_score_csv_written_by_the_score_command_reads_back(tmp_path):
    rng = np.random.default_rng(2)
    preds = []
    flags = [("warmup",)] * 3 + [("warmup", "flat")] + [()] * 3
    for i, c in enumerate([0, 0, 1, -1, 2, 3, 4]):
        p = tuple(_probs(c, rng))
        preds.append(StagePrediction(i, stage_name(c), p, max(p) if c >= 0 else math.nan, flags[i]))
    path = tmp_path / "preds.csv"
    write_stage_csv(path, preds)
    n = read_night(path)
    assert n.kind == "batch"
    assert n.stages.tolist() == [0, 0, 1, -1, 2, 3, 4]
    assert n.flags[3] == ("warmup", "flat") and n.flags[6] == ()
    np.testing.assert_allclose(n.probabilities[5], preds[5].probabilities, atol=1e-6)
    assert np.isnan(n.latency_ms).all() and n.start_wall is None


def test_unreadable_night_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_night(tmp_path / "absent.tsv")
    (tmp_path / "h.txt").write_text("W\nN1\nN2\n")
    with pytest.raises(InputFileError, match="unknown night file format"):
        read_night(tmp_path / "h.txt")
    (tmp_path / "empty.tsv").write_text("# session 1 started\n")
    with pytest.raises(InputFileError, match="empty night file"):
        read_night(tmp_path / "empty.tsv")
    bad = ["\t".join(LIVE_COLUMNS)] + ["0\tgarbage"] * 10 + [_live_row(0, 0.0, 2, np.random.default_rng(0))]
    (tmp_path / "bad.tsv").write_text("\n".join(bad) + "\n")
    with pytest.raises(InputFileError, match="10 malformed lines"):
        read_night(tmp_path / "bad.tsv")


# --------------------------------------------------------------------------- report files

def test_report_statistics_equal_the_hand_checked_definitions(full_report):
    result, _ = full_report
    s = result.stats
    assert s.tib_min == len(CODES) / 2 and s.sol_min == 3.0            # 6 wake epochs first
    assert s.waso_min == 1.0 and s.n_awakenings == 1                   # the 2-epoch awakening
    assert s.last_sleep_epoch == len(CODES) - 1                         # the night ends in REM
    assert s.rem_latency_min == (36 - 6) / 2                            # first REM at epoch 36
    stats = json.loads(result.files["stats"].read_text())
    assert stats["statistics"]["TST"] == s.tst_min and stats["units"]["SE"] == "%"
    assert stats["start"] == "2024-05-06T23:10:00" and stats["latency_ms"]["median"] == 11.5
    assert stats["flags"] == {"warmup": 4}


def test_png_is_written_and_non_empty(full_report):
    png = full_report[0].files["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_edf_annotations_read_back_through_mne_with_the_same_stages(full_report):
    result, _ = full_report
    path = result.files["edf"]
    ann = mne.read_annotations(path)
    back = np.full(len(CODES), -9)
    for onset, duration, text in zip(ann.onset, ann.duration, ann.description):
        back[int(round(onset / 30)):int(round((onset + duration) / 30))] = stage_code(text)
    assert back.tolist() == CODES.tolist()
    assert len(ann) == len(stage_runs(CODES).starts)                        # one annotation per run
    assert read_hypnogram(path).tolist() == CODES.tolist()
    import edfio

    edf = edfio.read_edf(path)
    assert (edf.startdate, edf.starttime) == (datetime(2024, 5, 6).date(), datetime(2024, 5, 6, 23, 10).time())


def test_bids_events_tsv_has_one_row_per_epoch_and_reads_back(full_report):
    result, _ = full_report
    with open(result.files["events"], newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["onset", "duration", "trial_type", "stage", "epoch", "confidence", "flags"]
    assert len(rows) == len(CODES)
    assert [float(r["onset"]) for r in rows[:3]] == [0.0, 30.0, 60.0] and rows[0]["duration"] == "30.0"
    assert [r["trial_type"] for r in rows] == [stage_name(int(c)) for c in CODES]
    assert rows[0]["flags"] == "warmup" and 0 < float(rows[10]["confidence"]) <= 1
    assert read_hypnogram(result.files["events"]).tolist() == CODES.tolist()
    sidecar = json.loads(result.files["events_json"].read_text())
    assert sidecar["onset"]["Units"] == "s" and set(sidecar["trial_type"]["Levels"]) == {*STAGES, "UNS"}


def test_truth_gives_the_score_commands_agreement_files(full_report):
    result, truth = full_report
    a = agreement(truth, CODES)
    assert result.agreement.accuracy == pytest.approx(a.accuracy) and a.n_epochs == len(CODES)
    metrics = json.loads(result.files["metrics"].read_text())
    assert metrics["accuracy"] == pytest.approx((len(CODES) - 3) / len(CODES))
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in the test extra")
    assert metrics["kappa"] == pytest.approx(sk.cohen_kappa_score(truth, CODES), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(sk.f1_score(truth, CODES, average="macro"), abs=1e-12)
    with open(result.files["confusion"]) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["true\\pred", *STAGES]
    assert int(rows[3][2]) == 1 and int(rows[3][4]) == 1               # true N2 scored N1 and N3


def test_labels_inside_the_recording_npz_are_the_truth_without_a_hypnogram(tmp_path):
    night = write_live_night(tmp_path / "n.tsv", CODES[:20])
    labels = CODES[:20].copy()
    labels[5] = 1
    write_continuous_npz(tmp_path / "rec.npz", synth_eeg(CODES[:20]), 100.0, labels=labels.astype(np.int8))
    result = write_report(night, tmp_path / "r", recording=tmp_path / "rec.npz")
    assert result.truth_source == f"labels in {tmp_path / 'rec.npz'}"
    assert result.agreement.n_epochs == 20 and result.agreement.accuracy == pytest.approx(19 / 20)


def test_a_night_that_started_late_in_the_recording_is_matched_with_an_offset(tmp_path):
    night = write_live_night(tmp_path / "n.tsv", CODES[20:40])          # joined 10 min late
    write_continuous_npz(tmp_path / "rec.npz", synth_eeg(CODES), 100.0, labels=CODES.astype(np.int8))
    late = write_report(night, tmp_path / "late", recording=tmp_path / "rec.npz", offset_s=600.0)
    assert late.agreement.accuracy == 1.0 and late.agreement.n_epochs == 20
    assert late.features.counts["N3"] == int(np.sum(CODES[20:40] == 3))
    assert late.features.means["N3"]["delta"] > 0.5
    unaligned = write_report(night, tmp_path / "unaligned", recording=tmp_path / "rec.npz")
    assert unaligned.agreement.accuracy < 0.5
    with pytest.raises(InputFileError, match="past"):
        write_report(night, tmp_path / "x", recording=tmp_path / "rec.npz", offset_s=30.0 * len(CODES))


def test_features_view_finds_each_stages_textbook_signature(full_report):
    fs = full_report[0].features
    top = {s: {f for f, d in fs.distinctive[s] if d > 0} for s in fs.distinctive}
    assert top["N3"] & {"delta", "slow_wave_index"}
    assert top["N2"] & {"sigma", "spindle_index"}
    assert "alpha" in top["W"]
    assert fs.means["N3"]["delta"] > 0.5 > fs.means["W"]["delta"]
    assert fs.counts == {s: int(np.sum(CODES == k)) for k, s in enumerate(STAGES)}
    by_stage = full_report[0].files["features_by_stage"].read_text().splitlines()
    assert by_stage[0].startswith("stage,epochs,mean_delta") and len(by_stage) == 6


# --------------------------------------------------------------------------- CLI

@pytest.mark.lsl
def test_cli_report_prints_the_summary_and_writes_the_folder(tmp_path):
    night = write_live_night(tmp_path / "n.tsv", CODES)
    proc = subprocess.run([sys.executable, "-m", "sleepstream.cli", "report", str(night)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Sleep statistics" in proc.stdout and "TST" in proc.stdout and "Lat_REM" in proc.stdout
    out = tmp_path / "n_report"
    assert (out / "n_hypnogram.png").stat().st_size > 0 and (out / "n_stats.json").exists()


@pytest.mark.parametrize("case", ["missing night", "unknown format", "hypnogram does not fit",
                                  "missing hypnogram", "missing recording", "out is a file"])
def test_cli_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, case):
    night = write_live_night(tmp_path / "n.tsv", CODES[:10])
    args = ["report", str(night), "--out", str(tmp_path / "r")]
    if case == "missing night":
        args[1] = str(tmp_path / "nope.tsv")
    elif case == "unknown format":
        (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
        args[1] = str(tmp_path / "x.csv")
    elif case == "hypnogram does not fit":
        # scores only epochs past the night's 10: it belongs to another recording
        (tmp_path / "t.txt").write_text("?\n" * 40 + "W\n" * 20)
        args += ["--hypnogram", str(tmp_path / "t.txt")]
    elif case == "missing hypnogram":
        args += ["--hypnogram", str(tmp_path / "none.edf")]
    elif case == "missing recording":
        args += ["--recording", str(tmp_path / "none.edf")]
    elif case == "out is a file":
        (tmp_path / "r").write_text("")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sleepstream report: error: ")
    assert "Traceback" not in err[0]


def test_real_sleep_edf_excerpt_scored_by_the_model_against_its_expert_hypnogram(shared_data, tmp_path, model):
    """The 300-s Sleep-EDF excerpt (10 epochs, all scored W by the expert) scored by the
    shipped model, with the whole night's EDF+ hypnogram as truth and the EDF as recording:
    the report's agreement, statistics and features follow the model's stages, whatever
    they are."""
    edf = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    hyp = shared_data / "sleep-edf" / "SC4001EC-Hypnogram.edf"
    preds = score_recording(read_recording(edf), model)
    write_stage_csv(tmp_path / "sc.csv", preds)
    codes = np.array([p.stage_code for p in preds])
    result = write_report(tmp_path / "sc.csv", tmp_path / "out", hypnogram=hyp, recording=edf)
    assert result.truth.tolist() == [0] * 10                    # the 2880-epoch night cut to 10
    assert result.night.stages.tolist() == codes.tolist()
    assert result.agreement.n_epochs == 10
    assert result.agreement.accuracy == pytest.approx(np.mean(codes == 0))
    assert result.agreement.confusion[0] == np.bincount(codes, minlength=5).tolist()   # truth row W
    assert result.features.counts == {s: int(np.sum(codes == k)) for k, s in enumerate(STAGES)}
    assert result.features.sfreq == 100.0
    assert result.stats.tst_min == pytest.approx(np.sum(codes > 0) * 0.5)


def test_a_night_shorter_than_the_band_smoothing_gets_its_figure(tmp_path):
    """Four epochs: the 5-epoch band smoothing must not return more values than epochs
    (np.convolve 'same' gives max(len, 5) values; ``sleepstream demo --recording`` on a
    4-epoch file ended in a traceback)."""
    codes = np.array([0, 0, 1, 2])
    night = write_live_night(tmp_path / "night.tsv", codes)
    rec = tmp_path / "rec.npz"
    write_continuous_npz(rec, synth_eeg(codes), 100.0)
    result = write_report(night, tmp_path / "report", recording=rec)
    assert result.files["png"].stat().st_size > 0
