"""Where the label sits in the training window: the last epoch by default (causal, the
shipped model), or elsewhere for a comparison model (the centred window of the
benchmarks). The default must leave training exactly as it was."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sleepnet.models.cnn_lstm_stager import SEQ_LEN
from sleepnet.train.training import (
    PreparedNight,
    TrainConfig,
    _block_batch,
    evaluate_prepared,
    train,
    window_indices,
    windowed_stage_codes,
)


def numbered_night(n: int = 12, n_times: int = 3000, name: str = "n") -> PreparedNight:
    """Epoch i holds the value i everywhere, so a batch shows which epochs it took."""
    data = np.repeat(np.arange(n, dtype=np.float32)[:, None], n_times, axis=1)
    labels = (np.arange(n) % 5).astype(np.int8)
    return PreparedNight(name, name, data, labels, np.ones(n, dtype=bool), 0, n)


def test_default_label_position_is_the_last_epoch_of_the_window():
    assert TrainConfig().label_position == SEQ_LEN - 1
    nt = numbered_night()
    x_default, y_default = _block_batch([nt], [(0, 3), (0, 8)], 4)
    x_last, y_last = _block_batch([nt], [(0, 3), (0, 8)], 4, label_position=SEQ_LEN - 1)
    assert torch.equal(x_default, x_last) and torch.equal(y_default, y_last)
    # the block for targets 3..6 holds epochs -1..6 (-1 padded with 0): t's window is t-4..t
    assert x_default[0, :, 0, 0].tolist() == [0, 0, 1, 2, 3, 4, 5, 6]
    assert y_default[0].tolist() == [3, 4, 0, 1]


def test_centred_windows_hold_two_epochs_after_the_labelled_one_padded_at_the_ends():
    nt = numbered_night(12)
    x, y = _block_batch([nt], [(0, 0), (0, 9)], 3, label_position=2)
    assert x[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2, 3, 4]        # targets 0..2: windows -2..4, start padded
    assert x[1, :, 0, 0].tolist() == [7, 8, 9, 10, 11, 11, 11]    # targets 9..11: end padded with the last
    assert y[0].tolist() == [0, 1, 2] and y[1].tolist() == [4, 0, 1]
    assert window_indices(5, 1, 12, 2).tolist() == [3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="label_position"):
        TrainConfig(label_position=SEQ_LEN)


@pytest.mark.slow
def test_centred_scoring_sees_the_future_and_causal_scoring_does_not(seeded_model):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((10, 3000)).astype(np.float32)
    later = data.copy()
    later[7] = rng.standard_normal(3000)                         # change epoch 7 only
    ok = np.ones(10, dtype=bool)
    net = seeded_model.net
    net.eval()

    def logits(d: np.ndarray, pos: int) -> np.ndarray:
        from sleepnet.train.training import block_logits

        idx = window_indices(0, len(d), len(d), pos)
        with torch.no_grad():
            return block_logits(net, torch.from_numpy(d[idx])[None, :, None, :])[0].numpy()

    causal, causal_later = logits(data, SEQ_LEN - 1), logits(later, SEQ_LEN - 1)
    np.testing.assert_array_equal(causal[:7], causal_later[:7])   # nothing before epoch 7 moves
    centred, centred_later = logits(data, 2), logits(later, 2)
    np.testing.assert_array_equal(centred[:5], centred_later[:5])
    assert not np.allclose(centred[5], centred_later[5])           # epoch 5's window reaches epoch 7
    codes = windowed_stage_codes(net, data, np.where(np.arange(10) == 3, False, ok), 2)
    assert codes[3] == -1 and codes.shape == (10,) and ((codes >= 0) | (np.arange(10) == 3)).all()


#: Each stage's rhythm in the learnable nights: frequency (Hz) and amplitude (model units).
RHYTHM_HZ = (10.0, 6.0, 13.0, 1.5, 4.0)
RHYTHM_AMP = (0.5, 0.7, 1.0, 3.0, 0.6)


def rhythm_night(n: int, seed: int, name: str) -> PreparedNight:
    """Runs of four epochs per stage, each stage its own sine plus noise: learnable in a
    few passes, so a training run that does not learn shows it."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.permutation(np.tile(np.arange(5), n // 20 + 1)), 4)[:n].astype(np.int8)
    t = np.arange(3000) / 100.0
    data = np.stack([RHYTHM_AMP[c] * np.sin(2 * np.pi * RHYTHM_HZ[c] * t + rng.uniform(0, 2 * np.pi))
                     + 0.1 * rng.standard_normal(3000) for c in labels]).astype(np.float32)
    return PreparedNight(name, name, data, labels, np.ones(n, dtype=bool), 0, n)


@pytest.mark.slow
def test_a_short_centred_training_run_learns_and_evaluates_with_centred_windows():
    from sleepnet.models.cnn_lstm import ModelConfig
    from sleepnet.models.cnn_lstm_stager import CnnLstmModel
    from sleepnet.preprocess import PreprocessConfig

    nights = [rhythm_night(40, seed, f"n{seed}") for seed in range(3)]
    cfg = TrainConfig(max_passes=8, patience=8, batch_blocks=2, block_targets=8, label_position=2,
                      learning_rate=3e-3, amplitude_jitter=0.0, spectral_tilt=0.0)
    net, info = train(nights[:2], nights[2:], ModelConfig(), PreprocessConfig(), cfg)
    assert info["train_config"]["label_position"] == 2 and len(info["history"]) == 8
    losses = [h["train_loss"] for h in info["history"]]
    assert losses[-1] < 0.8 * losses[0], f"the training loss did not fall: {losses}"
    model = CnnLstmModel(net, ModelConfig(), preprocess=PreprocessConfig(), model_id="centred-test", source=None)
    pooled, per = evaluate_prepared(model, nights[2:], label_position=2)
    assert pooled.n_epochs == 40 and len(per) == 1
    assert pooled.accuracy >= 0.5, f"held-out night staged at chance: {pooled.accuracy:.2f} (chance 0.2)"
    assert pooled.accuracy == pytest.approx(info["history"][info["best_pass"] - 1]["val_accuracy"], abs=1e-12)
