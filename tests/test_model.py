"""The CNN-LSTM and the sequence scorer: shapes, causality, context rule, batch == one by one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import eeg_like

from sleepnet.batch import score_recording
from sleepnet.io.recordings import Recording
from sleepnet.models.cnn_lstm import CausalSleepNet, ModelConfig, count_parameters
from sleepnet.models.cnn_lstm_stager import CnnLstmStager
from sleepnet.preprocess import Epoch, preprocess_signal


@pytest.mark.parametrize("sfreq,epoch_s", [(100.0, 30.0), (128.0, 30.0), (100.0, 20.0)])
def test_shapes_follow_rate_and_epoch_length(sfreq, epoch_s):
    cfg = ModelConfig(sfreq_hz=sfreq, epoch_s=epoch_s)
    net = CausalSleepNet(cfg).eval()
    x = torch.randn(3, 5, 1, cfg.epoch_samples)
    assert net(x).shape == (3, 5)
    assert net.encode(x[:, 0]).shape == (3, cfg.embed_dim)


def test_window_forward_equals_encode_then_classify():
    torch.manual_seed(0)
    net = CausalSleepNet(ModelConfig()).eval()
    x = torch.randn(4, 5, 1, 3000)
    with torch.no_grad():
        direct = net(x)
        emb = torch.stack([net.encode(x[:, i]) for i in range(5)], dim=1)
        two_step = net.classify_embeddings(emb)
    torch.testing.assert_close(direct, two_step, rtol=1e-5, atol=1e-5)


def test_parameter_count_is_small():
    n = count_parameters(CausalSleepNet(ModelConfig()))
    assert 100_000 < n < 1_000_000


def _rec(x, sfreq=100.0):
    return Recording(eeg_uv=x, sfreq=sfreq, channel="Fpz-Cz", source="test")


def test_output_for_epoch_i_ignores_every_later_sample(seeded_model):
    x = eeg_like(30 * 8, 100, seed=5)
    y = x.copy()
    y[30 * 100 * 5:] = np.random.default_rng(1).normal(0, 100, len(y) - 3000 * 5)
    a, b = score_recording(_rec(x), seeded_model), score_recording(_rec(y), seeded_model)
    for i in range(5):
        assert a[i].probabilities == b[i].probabilities  # bit-identical
    assert a[6].probabilities != b[6].probabilities


def test_one_epoch_at_a_time_equals_batch(seeded_model):
    epochs = preprocess_signal(eeg_like(30 * 12, 100, seed=7), 100)
    batch = CnnLstmStager(seeded_model).score(epochs)
    live_scorer = CnnLstmStager(seeded_model)
    live = [p for e in epochs for p in live_scorer.score([e])]
    for a, b in zip(batch, live):
        assert a.stage == b.stage and a.flags == b.flags
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_first_four_epochs_are_warmup_padded_by_the_first_epoch(seeded_model):
    epochs = preprocess_signal(eeg_like(30 * 6, 100, seed=8), 100)
    preds = CnnLstmStager(seeded_model).score(epochs)
    assert [("warmup" in p.flags) for p in preds] == [True] * 4 + [False] * 2
    # epoch 0 alone == epoch 0 repeated five times through the network
    with torch.no_grad():
        x = torch.from_numpy(np.stack([epochs[0].data] * 5))[None, :, None, :]
        p0 = torch.softmax(seeded_model.net(x).double(), 1)[0].numpy()
    np.testing.assert_allclose(preds[0].probabilities, p0, atol=1e-5)


def test_context_restarts_after_an_unscored_epoch(seeded_model):
    epochs = preprocess_signal(eeg_like(30 * 10, 100, seed=9), 100)
    broken = [Epoch(e.index, e.data, e.missing_fraction, e.flags, scorable=(e.index != 4)) for e in epochs]
    preds = CnnLstmStager(seeded_model).score(broken)
    assert preds[4].stage == "UNS" and np.isnan(preds[4].confidence)
    assert [("warmup" in p.flags) for p in preds[5:]] == [True] * 4 + [False]
    # after the break, epoch 5 is scored as if the recording started there
    fresh = CnnLstmStager(seeded_model).score(epochs[5:6])[0]
    np.testing.assert_allclose(preds[5].probabilities, fresh.probabilities, atol=1e-6)
