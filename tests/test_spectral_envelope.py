"""The simulator's spectral envelope: fitted to real features, drawn per epoch, imposed on the signal."""
from __future__ import annotations

import numpy as np
import pytest

from sleepnet.features import base_features
from sleepnet.sim.calibrate import (
    CALIBRATION_SUBJECTS,
    ENVELOPE_COMPONENTS,
    fit_envelope,
    load_feature_nights,
    subject_number,
)
from sleepnet.sim.envelope import (
    SpectralEnvelopeModel,
    draw_targets,
    fit_envelope_model,
    hours_since_sleep_onset,
    impose_envelope,
    measure_envelope,
    targets_from_base_features,
)
from sleepnet.sim.night import simulate_hypnogram
from sleepnet.sim.parameters import SubjectParams, load_params

W, N1, N2, N3, REM = range(5)


def _night_labels() -> np.ndarray:
    """A short night: wake, N1, N2, N3, N2, REM, wake (in 30-s epochs)."""
    return np.repeat(np.array([W, N1, N2, N3, N2, REM, W], dtype=np.int8), [20, 10, 30, 30, 20, 30, 10])


def test_targets_undo_the_features_offset_exactly():
    rng = np.random.default_rng(0)
    x_uv = rng.standard_normal((4, 3000)) * 30.0
    feats = base_features(x_uv * 1e-6)
    np.testing.assert_allclose(targets_from_base_features(feats), measure_envelope(x_uv, 100.0), atol=1e-6)


def test_hours_count_from_the_first_sleep_epoch():
    h = hours_since_sleep_onset(np.array([0, 0, 2, 2, 0, 4]))
    np.testing.assert_allclose(h * 120, [0, 0, 0, 1, 2, 3])


@pytest.mark.slow
def test_imposed_envelope_reaches_its_targets_at_100_and_256_hz():
    params = load_params()
    labels = _night_labels()
    for sfreq in (100.0, 256.0):
        night = simulate_hypnogram(labels, 3, sfreq, subject=SubjectParams(), params=params)
        targets = draw_targets(params.envelope, labels, np.random.default_rng(5))
        y = impose_envelope(night.eeg_uv, sfreq, targets)
        spe = int(30 * sfreq)
        got = measure_envelope(y[: len(labels) * spe].reshape(len(labels), spe), sfreq)
        err = np.abs(got - targets)
        assert np.median(err) < 0.02, sfreq
        assert np.percentile(err[:, :5], 95) < 0.1, sfreq


def test_drawn_targets_order_the_stages_as_real_nights_do():
    env = load_params().envelope
    labels = np.repeat(np.arange(5, dtype=np.int8), 400)
    labels = np.concatenate([[N2], labels])           # sleep onset at epoch 0
    t = draw_targets(env, labels, np.random.default_rng(1))
    med = [np.median(t[labels == s], axis=0) for s in range(5)]
    assert med[N3][0] > med[N2][0] > med[REM][0]      # delta: N3 > N2 > REM
    assert med[W][3] > med[N2][3]                     # beta: W > N2
    assert med[W][4] > med[N2][4] + 1.0               # gamma (muscle): W far above N2
    assert med[N1][0] < med[N2][0]                    # delta: N1 < N2


def test_the_same_rng_draws_the_same_targets():
    env = load_params().envelope
    labels = _night_labels()
    a = draw_targets(env, labels, np.random.default_rng(9))
    b = draw_targets(env, labels, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, draw_targets(env, labels, np.random.default_rng(10)))


def test_model_survives_json():
    env = load_params().envelope
    again = SpectralEnvelopeModel.from_dict(env.to_dict())
    labels = _night_labels()
    np.testing.assert_allclose(draw_targets(env, labels, np.random.default_rng(2)),
                               draw_targets(again, labels, np.random.default_rng(2)), atol=1e-4)


def test_fit_recovers_a_known_two_stage_model():
    """Epochs drawn from known Gaussians: the fit finds their levels and persistence."""
    rng = np.random.default_rng(4)
    nights = []
    for _ in range(6):
        y = np.repeat(np.array([W, N2, N3, N2, REM, N1, W]), 80)
        levels = {W: -22.5, N1: -22.9, N2: -22.7, N3: -22.0, REM: -22.9}
        ar = np.zeros(9)
        X = np.empty((len(y), 9))
        for i, s in enumerate(y):
            ar = 0.6 * ar + 0.8 * rng.standard_normal(9) * 0.1
            base = np.log(np.exp(levels[s] + ar[:5]) + 1e-10)
            X[i, :5] = base
            X[i, 7] = np.log(np.exp(levels[s] + 1.0 + ar[7]) + 1e-10)
        nights.append((X, y))
    env = fit_envelope_model(nights, n_components=2)
    Z = targets_from_base_features(np.concatenate([X for X, _ in nights]))
    yy = np.concatenate([y for _, y in nights])
    rng = np.random.default_rng(0)
    drawn = np.concatenate([draw_targets(env, y, rng) for _, y in nights])
    for s in range(5):
        np.testing.assert_allclose(np.median(drawn[yy == s], axis=0), np.median(Z[yy == s], axis=0), atol=0.08)
    assert 0.4 < env.ar1[N2] < 0.8


@pytest.mark.slow
def test_committed_envelope_is_what_the_calibration_nights_give(shared_data):
    committed = load_params().envelope.to_dict()
    fresh = fit_envelope(shared_data)
    assert fresh["source"] == committed["source"]
    assert len(committed["weights"][0]) == ENVELOPE_COMPONENTS
    for key in ("level", "trend_per_h", "night_chol", "weights", "means", "chols", "ar1", "stay"):
        np.testing.assert_allclose(np.asarray(fresh[key]), np.asarray(committed[key]), atol=1e-4, err_msg=key)


@pytest.mark.slow
def test_drawn_envelopes_match_the_calibration_nights_stage_medians(shared_data):
    """Targets drawn on the real calibration hypnograms have the real stage medians of the
    five band powers and the variance (pooled over ten draws of each night, within 0.35 in log units,
    i.e. x1.4 in power; the within-stage spread is deliberately narrower than real)."""
    nights = [n for n in load_feature_nights(shared_data) if subject_number(n) in CALIBRATION_SUBJECTS]
    env = load_params().envelope
    rng = np.random.default_rng(11)
    drawn = np.concatenate([draw_targets(env, n.labels, rng) for n in nights for _ in range(10)])
    yy = np.concatenate([n.labels for n in nights for _ in range(10)])
    real = np.concatenate([targets_from_base_features(n.features) for n in nights])
    yr = np.concatenate([n.labels for n in nights])
    for s in range(5):
        diff = np.abs(np.median(drawn[yy == s], axis=0) - np.median(real[yr == s], axis=0))
        assert diff.max() < 0.35, (s, diff.round(2))


def test_simulated_signal_follows_its_envelope_at_the_stage_level():
    """A simulated night's measured band powers order the stages like the envelope does:
    delta highest in N3, gamma (muscle) highest in wake."""
    labels = _night_labels()
    night = simulate_hypnogram(labels, 21, 100.0)
    k = night.n_epochs
    got = measure_envelope(night.eeg_uv[: k * 3000].reshape(k, 3000), 100.0)
    med = [np.median(got[night.labels == s], axis=0) for s in range(5)]
    assert med[N3][0] == max(m[0] for m in med)
    assert med[W][4] == max(m[4] for m in med)


def test_envelope_only_refit_of_a_missing_parameter_file_is_one_line_and_exit_2(shared_data, tmp_path, caplog):
    from sleepnet.sim.calibrate import main as calibrate_main

    missing = tmp_path / "nope.json"
    assert calibrate_main(["--envelope-only", "--data", str(shared_data), "--out", str(missing)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(missing) in errors[0] and "cannot read" in errors[0]
    assert not missing.exists()
