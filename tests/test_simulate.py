"""The simulator: determinism, each stage's signature, night statistics, files and CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from sleepnet.features import BASE_FEATURE_NAMES, EXPLAIN_FEATURE_NAMES, base_features, relative_band_powers
from sleepnet.io.hypnograms import read_hypnogram
from sleepnet.io.recordings import read_recording
from sleepnet.sim.hypnogram_model import (
    HYPNOGRAM_STAT_NAMES,
    fit_hypnogram_model,
    generate_epochs,
    hypnogram_statistics,
    load_real_nights,
)
from sleepnet.sim.night import EDF_STAGE_TEXT, ensure_demo_recording, simulate_night, simulate_subjects, write_night_edf
from sleepnet.sim.parameters import PARAMS_PATH, SubjectParams, load_params, random_subject
from sleepnet.stages import STAGES
from sleepstream.cli import main as cli_main

W, N1, N2, N3, REM = range(5)
SLEEPSTREAM = Path(sys.executable).with_name("sleepstream")


@pytest.fixture(scope="module")
def night():
    """An 8-h night of the median simulated person."""
    return simulate_night(8.0, 4242, subject=SubjectParams())


def _epochs(n) -> np.ndarray:
    k = int(round(30 * n.sfreq))
    return n.eeg_uv[: n.n_epochs * k].reshape(n.n_epochs, k).astype(np.float64)


def _median(values: np.ndarray, labels: np.ndarray, stage: int) -> float:
    return float(np.median(values[labels == stage]))


def slow_wave_coverage(x_uv: np.ndarray, sfreq: float, n_epochs: int, threshold_uv: float = 75.0) -> np.ndarray:
    """Share of each 30-s epoch covered by slow waves as AASM defines them: waves of
    0.5-2 Hz (0.5-2 s from one upward zero crossing of the 0.3-4 Hz signal to the next)
    with a peak-to-peak amplitude above ``threshold_uv``."""
    sos = signal.butter(2, [0.3, 4.0], btype="band", fs=sfreq, output="sos")
    y = signal.sosfiltfilt(sos, np.asarray(x_uv, dtype=np.float64))
    up = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))
    covered = np.zeros(len(y), dtype=bool)
    for a, b in zip(up[:-1], up[1:]):
        if 0.5 <= (b - a) / sfreq <= 2.0 and np.ptp(y[a:b]) > threshold_uv:
            covered[a:b] = True
    k = int(round(30 * sfreq))
    return covered[: n_epochs * k].reshape(n_epochs, k).mean(axis=1)


# --------------------------------------------------------------------------- determinism

def test_same_seed_gives_the_same_night_bit_for_bit():
    a, b = simulate_night(0.5, 7), simulate_night(0.5, 7)
    assert np.array_equal(a.eeg_uv, b.eeg_uv)
    assert np.array_equal(a.labels, b.labels)
    assert a.subject == b.subject
    c = simulate_night(0.5, 8)
    assert not np.array_equal(a.eeg_uv, c.eeg_uv)


def test_night_has_the_requested_length_and_one_label_per_epoch():
    n = simulate_night(1.0, 3)
    assert n.eeg_uv.dtype == np.float32 and n.eeg_uv.shape == (360_000,)
    assert n.labels.dtype == np.int8 and n.labels.shape == (120,)
    assert n.sfreq == 100.0 and n.channel == "Fpz-Cz"
    assert set(np.unique(n.labels)) <= set(range(5))
    assert np.all(np.isfinite(n.eeg_uv))
    assert n.labels[0] == W  # lights off: the night starts awake


def test_other_rates_are_synthesised_at_that_rate_with_the_same_hypnogram():
    a, b = simulate_night(0.5, 11, 100.0), simulate_night(0.5, 11, 256.0)
    assert b.sfreq == 256.0 and len(b.eeg_uv) == 0.5 * 3600 * 256
    assert np.array_equal(a.labels, b.labels)
    sos = {fs: signal.butter(4, 30.0, fs=fs, output="sos") for fs in (100.0, 256.0)}
    sd_a = signal.sosfiltfilt(sos[100.0], a.eeg_uv).std()
    sd_b = signal.sosfiltfilt(sos[256.0], b.eeg_uv).std()
    assert 0.7 < sd_b / sd_a < 1.4  # same EEG below 30 Hz, whatever the rate


def test_simulated_people_differ():
    s1, s2 = random_subject(1), random_subject(2)
    assert s1 != s2 and random_subject(1) == s1
    amps = [random_subject(k).amplitude for k in range(200)]
    alphas = [random_subject(k).alpha_hz for k in range(200)]
    assert 0.5 <= min(amps) and max(amps) <= 2.0 and max(amps) / min(amps) > 1.8
    assert 8.5 <= min(alphas) and max(alphas) <= 11.5
    nights = simulate_subjects(2, 0.25, seed=5)
    assert nights[0].subject != nights[1].subject
    assert not np.array_equal(nights[0].eeg_uv, nights[1].eeg_uv)


# --------------------------------------------------------------------------- stage signatures

def test_every_stage_occurs_in_a_full_night(night):
    counts = np.bincount(night.labels, minlength=5)
    assert np.all(counts > 0), dict(zip(STAGES, counts))


def test_n3_has_slow_waves_over_75uv_for_more_than_a_fifth_of_its_time(night):
    cover = slow_wave_coverage(night.eeg_uv, night.sfreq, night.n_epochs)
    assert cover[night.labels == N3].mean() > 0.20
    for s in (W, N1, N2, REM):
        assert np.median(cover[night.labels == N3]) > np.median(cover[night.labels == s]) + 0.1


def test_slow_wave_power_orders_the_stages_by_depth(night):
    feats = base_features(_epochs(night) * 1e-6)
    delta = feats[:, BASE_FEATURE_NAMES.index("log_delta")]
    rel = relative_band_powers(_epochs(night))
    swi = rel[:, EXPLAIN_FEATURE_NAMES.index("slow_wave_index")]
    y = night.labels
    assert _median(delta, y, N3) > _median(delta, y, N2) > max(_median(delta, y, N1), _median(delta, y, REM))
    assert _median(swi, y, N3) > 2 * max(_median(swi, y, s) for s in (W, N1, N2, REM))


def test_n2_carries_the_most_spindle_band_power(night):
    rel = relative_band_powers(_epochs(night))
    sigma = rel[:, EXPLAIN_FEATURE_NAMES.index("sigma")]
    spi = rel[:, EXPLAIN_FEATURE_NAMES.index("spindle_index")]
    y = night.labels
    for s in (W, N1, N3, REM):
        assert _median(sigma, y, N2) > 1.3 * _median(sigma, y, s), STAGES[s]
        assert _median(spi, y, N2) > 1.5 * _median(spi, y, s), STAGES[s]


def test_relaxed_wake_carries_alpha(night):
    """Alpha (8-12 Hz) relative power: wake epochs reach levels sleep epochs (N2, N3)
    do not, and the alpha rhythm of wake is stronger than in REM."""
    rel = relative_band_powers(_epochs(night))
    alpha = rel[:, EXPLAIN_FEATURE_NAMES.index("alpha")]
    y = night.labels
    w_top = np.percentile(alpha[y == W], 75)
    for s in (N2, N3):
        assert w_top > 1.5 * np.percentile(alpha[y == s], 75), STAGES[s]
    feats = base_features(_epochs(night) * 1e-6)
    log_alpha = feats[:, BASE_FEATURE_NAMES.index("log_alpha")]
    assert _median(log_alpha, y, W) > _median(log_alpha, y, REM)


def test_rem_is_low_amplitude_and_wake_carries_muscle(night):
    feats = base_features(_epochs(night) * 1e-6)
    var = feats[:, BASE_FEATURE_NAMES.index("log_var")]
    gamma = feats[:, BASE_FEATURE_NAMES.index("log_gamma")]
    y = night.labels
    assert _median(var, y, REM) < _median(var, y, N2) < _median(var, y, N3)
    assert _median(gamma, y, W) > max(_median(gamma, y, s) for s in (N2, N3, REM))


# --------------------------------------------------------------------------- hypnograms

def _real_ranges() -> dict:
    return json.loads(PARAMS_PATH.read_text(encoding="utf-8"))["real_hypnogram_statistics"]


def test_statistics_of_many_simulated_nights_fall_inside_the_real_ranges():
    ranges = _real_ranges()
    model = load_params().hypnogram
    rng = np.random.default_rng(123)
    stats = [hypnogram_statistics(generate_epochs(model, 8.5, rng)) for _ in range(80)]
    for k in HYPNOGRAM_STAT_NAMES:
        v = np.nanmean([d[k] for d in stats])
        assert ranges[k]["min"] <= v <= ranges[k]["max"], (k, v, ranges[k])
    # Architecture: N3 concentrated early, REM late, REM latency well after onset.
    assert np.nanmean([d["n3_first_third"] for d in stats]) > 0.45
    assert np.nanmean([d["rem_last_third"] for d in stats]) > 0.38
    assert np.nanmedian([d["rem_latency_min"] for d in stats]) > 60


def test_most_single_simulated_nights_look_like_a_real_night():
    ranges = _real_ranges()
    model = load_params().hypnogram
    rng = np.random.default_rng(321)
    stats = [hypnogram_statistics(generate_epochs(model, 8.5, rng)) for _ in range(80)]
    for k in ("pct_N1", "pct_N2", "pct_N3", "pct_REM", "sleep_onset_latency_min", "transitions_per_hour"):
        v = np.array([d[k] for d in stats])
        inside = np.mean((v >= ranges[k]["min"]) & (v <= ranges[k]["max"]))
        assert inside >= 0.75, (k, inside)


def test_stage_changes_fall_off_the_epoch_grid_yet_labels_keep_the_majority_stage(night):
    changes = night.stage_changes_s[1:]
    off = np.abs(changes / 30.0 - np.round(changes / 30.0)) * 30.0
    assert np.mean(off > 1.0) > 0.5
    assert np.all(off <= 12.0 + 1e-9)  # never more than 12 s: each epoch keeps its majority stage


def test_committed_hypnogram_model_is_what_the_real_hypnograms_give(shared_data):
    nights = load_real_nights(shared_data / "hypnograms")
    assert len(nights) == 51
    fitted = fit_hypnogram_model(nights).to_dict()
    committed = json.loads(PARAMS_PATH.read_text(encoding="utf-8"))["hypnogram_model"]
    assert np.allclose(fitted["transitions"], committed["transitions"], atol=1e-5)
    assert fitted["bout_epochs"] == committed["bout_epochs"]


# --------------------------------------------------------------------------- files and CLI

def test_edf_output_reads_back_through_mne_with_its_hypnogram(tmp_path):
    import mne

    n = simulate_night(1.0, 21, 256.0)
    path = tmp_path / "night.edf"
    write_night_edf(path, n)
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    assert raw.ch_names == ["EEG Fpz-Cz"] and raw.info["sfreq"] == 256.0
    assert np.max(np.abs(raw.get_data()[0] * 1e6 - n.eeg_uv)) < 0.05
    texts = set(mne.read_annotations(path).description)
    assert texts and texts <= set(EDF_STAGE_TEXT)
    assert np.array_equal(read_hypnogram(path, n.n_epochs), n.labels)
    rec = read_recording(path)
    assert rec.sfreq == 256.0 and rec.n_epochs == n.n_epochs


def test_simulate_command_writes_a_readable_npz_night(tmp_path):
    out = tmp_path / "night.npz"
    assert cli_main(["simulate", "--hours", "0.5", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    rec = read_recording(out)
    ref = simulate_night(0.5, 3)
    assert rec.sfreq == 100.0 and rec.n_epochs == 60
    assert np.array_equal(rec.labels, ref.labels)
    assert np.array_equal(rec.eeg_uv, ref.eeg_uv)


@pytest.mark.lsl
def test_simulate_console_command_writes_several_subjects_as_edf(tmp_path):
    out = tmp_path / "set.edf"
    proc = subprocess.run([str(SLEEPSTREAM), "simulate", "--hours", "0.25", "--seed", "4", "--sfreq", "256",
                           "--subjects", "2", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("set_s*.edf"))
    assert [f.name for f in files] == ["set_s00.edf", "set_s01.edf"]
    recs = [read_recording(f) for f in files]
    assert all(r.sfreq == 256.0 for r in recs)
    assert not np.array_equal(recs[0].eeg_uv, recs[1].eeg_uv)
    assert all(len(read_hypnogram(f)) == 30 for f in files)


@pytest.mark.parametrize("args, words", [
    (["--hours", "0"], "--hours"),
    (["--hours", "-2"], "--hours"),
    (["--sfreq", "10"], "--sfreq"),
    (["--subjects", "0"], "--subjects"),
    (["--out", "no/such/folder/night.npz"], "does not exist"),
    (["--out", "night.npz", "--format", "edf"], "does not match"),
])
def test_bad_simulate_arguments_give_one_line_and_exit_2(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["simulate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.npz"))


@pytest.mark.slow
def test_demo_recording_is_made_once_and_reads_with_labels(tmp_path):
    path = tmp_path / "data" / "demo-night.npz"
    assert ensure_demo_recording(path) == path
    rec = read_recording(path)
    assert rec.sfreq == 100.0 and rec.n_epochs == 960 and rec.labels is not None
    assert len(set(rec.labels.tolist())) == 5
    mtime = path.stat().st_mtime_ns
    assert ensure_demo_recording(path) == path and path.stat().st_mtime_ns == mtime
