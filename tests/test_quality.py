"""The shipped CNN-LSTM stages a simulated night it never saw as well as its model card
says, not merely consistently: a regression that keeps live and batch equal (wrong
weights, a broken preprocessing or label order) fails here.

The night is held-out simulated subject 900 (the card's held-out subjects are 900-909,
never trained on), 8 h, seed 0, scored through the public path (load_model +
score_recording) and compared in the card's trim (30 min of wake around sleep), exactly as
``sleepstream evaluate --dataset simulated --subjects 900 --seed 0 --trim`` does.
Measured for the shipped weights: accuracy 0.979, kappa 0.973, every stage's F1 >= 0.92
on this night (0.980 / 0.973 pooled over 900-909 in the card). The thresholds leave room
for a retrained model and none for a broken one: a model that says W for everything has
kappa 0, one that drops a stage has that stage's F1 at 0.
"""
from __future__ import annotations

import numpy as np
import pytest

from sleepnet.batch import score_recording
from sleepnet.metrics import agreement
from sleepnet.train.datasets import simulated_nights
from sleepnet.train.training import trim_range
from sleepnet.weights import load_model, weights_root

HELD_OUT_SUBJECT = 900
MIN_ACCURACY = 0.90
MIN_KAPPA = 0.85
MIN_STAGE_F1 = 0.70

#: The CNN-LSTM trained on simulated nights (shipped; no longer the default).
CNN_LSTM_WEIGHTS = weights_root() / "cnn-lstm-simulated-v2"


@pytest.fixture(scope="module")
def held_out_night():
    return simulated_nights([HELD_OUT_SUBJECT], hours=8.0, seed=0)[0]


def trimmed_agreement(night, model):
    codes = np.array([p.stage_code for p in score_recording(night.recording, model)])
    truth = night.recording.labels[:len(codes)]
    lo, hi = trim_range(truth)
    return agreement(truth[lo:hi], codes[lo:hi])


@pytest.mark.slow
def test_shipped_cnn_lstm_stages_a_held_out_simulated_night_well(held_out_night):
    model = load_model(CNN_LSTM_WEIGHTS)
    assert "simulated" in model.model_id, "this test is for the model trained on simulated nights"
    a = trimmed_agreement(held_out_night, model)
    assert a.n_epochs > 600 and set(a.support) == {"W", "N1", "N2", "N3", "REM"}
    assert all(a.support[s] > 0 for s in a.support), a.support
    assert a.accuracy >= MIN_ACCURACY, a.accuracy
    assert a.kappa >= MIN_KAPPA, a.kappa
    assert min(a.f1.values()) >= MIN_STAGE_F1, a.f1


@pytest.mark.slow
def test_a_broken_model_fails_the_quality_thresholds(held_out_night, seeded_model):
    """The same check on random weights (a model that loads and runs, but never learnt)
    stays far below the thresholds: the thresholds can fail."""
    a = trimmed_agreement(held_out_night, seeded_model)
    assert a.kappa < MIN_KAPPA and min(a.f1.values()) < MIN_STAGE_F1
