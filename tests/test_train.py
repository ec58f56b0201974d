"""A small end-to-end training run on simulated nights: the real pipeline, minutes shortened."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli_score import run_cli

from sleepnet.errors import SleepstreamError
from sleepnet.train.datasets import parse_subjects
from sleepnet.train.training import trim_range
from sleepnet.weights import load_model


@pytest.mark.slow
@pytest.mark.lsl
def test_training_on_simulated_nights_exports_a_loadable_weights_folder(tmp_path):
    out = tmp_path / "w"
    proc = run_cli("train", "--kind", "cnn-lstm", "--dataset", "simulated", "--subjects", "0-3", "--hours", "1.5",
                   "--max-passes", "2", "--val-fraction", "0.25", "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    model = load_model(out)
    assert model.model_id.startswith("cnn-lstm-simulated")
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"]["split"].startswith("subject-wise")
    assert len(m["train_nights"]) == 3 and len(m["validation_nights"]) == 1
    assert not set(m["train_nights"]) & set(m["validation_nights"])
    assert m["history"][0]["train_loss"] > 0 and len(m["history"]) <= 2
    # The validation figures the command wrote are those of the exported weights: `evaluate`
    # scores the validation subject's night afresh (the same trim) and must find them exactly.
    val_subject = m["validation_nights"][0].rsplit("-", 1)[1]
    proc = run_cli("evaluate", "--dataset", "simulated", "--subjects", str(int(val_subject)), "--hours", "1.5",
                   "--trim", "--weights", out, "--out", tmp_path / "eval.json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((tmp_path / "eval.json").read_text())["pooled"]
    assert ev["n_epochs"] == m["validation"]["n_epochs"] > 0
    assert ev["confusion"] == m["validation"]["confusion"]
    assert ev["accuracy"] == pytest.approx(m["validation"]["accuracy"], abs=1e-12)


def test_trim_keeps_30_minutes_of_wake_around_sleep():
    labels = np.array([0] * 100 + [1, 2, 3, 2] + [0] * 100)
    assert trim_range(labels) == (40, 164)
    assert trim_range(np.zeros(10, dtype=int)) == (0, 10)


def test_subject_ranges_parse_and_bad_ones_are_refused():
    assert parse_subjects("0-3,7, 9-8") == [0, 1, 2, 3, 7, 8, 9]
    with pytest.raises(SleepstreamError, match="subjects='a-b': expected numbers and ranges") as e:
        parse_subjects("a-b")
    assert e.value.parameters == ("subjects",)


def test_spectral_tilt_keeps_10_hz_and_reshapes_the_rest():
    import torch

    from sleepnet.train.training import tilt_spectra

    t = torch.arange(3000) / 100.0
    x = (torch.sin(2 * torch.pi * 10 * t) + torch.sin(2 * torch.pi * 30 * t))[None, None, None, :]
    y = tilt_spectra(x, np.array([1.0]), 100.0)[0, 0, 0]
    spec = torch.fft.rfft(y).abs()
    assert spec[300] == pytest.approx(1500, rel=0.01)        # 10 Hz unchanged
    assert spec[900] == pytest.approx(1500 * 3, rel=0.01)    # 30 Hz x (30/10)**1
    same = tilt_spectra(x, np.array([0.0]), 100.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
