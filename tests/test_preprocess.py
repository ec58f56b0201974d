"""The one preprocessing path: chunking-invariant, causal, honest about bad samples."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import eeg_like

from sleepnet.preprocess import PreprocessConfig, Preprocessor, StreamingResampler, preprocess_signal

RATES = [100, 128, 200, 250, 256, 500, 512, 1000]
# chunks of 1-10 samples at 500 Hz and more take seconds each (~10 s at 1000 Hz): the slow tier
RATES_TIERED = [r if r < 500 else pytest.param(r, marks=pytest.mark.slow) for r in RATES]


def _chunked(x: np.ndarray, sfreq: float, rng: np.random.Generator, max_chunk: int):
    pre, out, i = Preprocessor(sfreq), [], 0
    while i < len(x):
        k = int(rng.integers(1, max_chunk))
        out += pre.push(x[i:i + k])
        i += k
    return out


@pytest.mark.parametrize("sfreq", RATES_TIERED)
def test_random_chunks_give_bit_identical_epochs(sfreq):
    x = eeg_like(30 * 4 + 7, sfreq, seed=sfreq)
    whole = preprocess_signal(x, sfreq)
    rng = np.random.default_rng(0)
    for max_chunk in (11, 500, 20000):
        parts = _chunked(x, sfreq, rng, max_chunk)
        assert len(parts) == len(whole) == 4
        for a, b in zip(whole, parts):
            assert a.index == b.index
            assert np.array_equal(a.data, b.data)
            assert a.flags == b.flags


@pytest.mark.parametrize("sfreq", [128, 256, 500])
def test_resampling_keeps_a_10_hz_sine_amplitude(sfreq):
    t = np.arange(int(sfreq * 90)) / sfreq
    epochs = preprocess_signal(100 * np.sin(2 * np.pi * 10 * t), sfreq)
    scale = PreprocessConfig().scale_uv
    amp = epochs[-1].data.std() * scale * np.sqrt(2)
    assert amp == pytest.approx(100, rel=0.01)
    assert len(epochs[-1].data) == 3000


def test_filter_removes_dc_and_high_frequencies():
    sfreq = 100
    t = np.arange(sfreq * 90) / sfreq
    x = 500 + 50 * np.sin(2 * np.pi * 45 * t) + 20 * np.sin(2 * np.pi * 10 * t)
    e = preprocess_signal(x, sfreq)[-1]
    uv = e.data * PreprocessConfig().scale_uv
    assert abs(uv.mean()) < 1.0                    # DC gone, no start-up ringing
    assert uv.std() * np.sqrt(2) < 25              # 45 Hz strongly attenuated, 10 Hz kept


def test_changing_later_samples_leaves_earlier_epochs_bit_identical():
    sfreq = 256
    x = eeg_like(30 * 6, sfreq, seed=3)
    y = x.copy()
    cut = int(sfreq * 30 * 3)  # everything after epoch 2 changes
    y[cut:] = np.random.default_rng(9).normal(0, 80, len(y) - cut)
    a, b = preprocess_signal(x, sfreq), preprocess_signal(y, sfreq)
    for i in range(3):
        assert np.array_equal(a[i].data, b[i].data)
    assert not np.array_equal(a[4].data, b[4].data)


def test_missing_samples_are_counted_flagged_and_never_poison_the_filter():
    sfreq = 100
    x = eeg_like(30 * 4, sfreq, seed=1)
    x[3000:3300] = np.nan        # 10 % of epoch 1
    x[6000:9000] = np.inf        # all of epoch 2
    ep = preprocess_signal(x, sfreq)
    assert ep[0].flags == () and ep[0].scorable
    assert "gap" in ep[1].flags and ep[1].missing_fraction == pytest.approx(0.1) and ep[1].scorable
    assert "gap" in ep[2].flags and not ep[2].scorable
    assert all(np.isfinite(e.data).all() for e in ep)
    assert ep[3].scorable and ep[3].data.std() > 0.1


def test_flat_line_is_not_scorable_and_clipping_is_flagged():
    sfreq = 100
    x = eeg_like(30 * 3, sfreq, seed=2)
    x[3000:6000] = 12.0                      # electrode off: flat
    seg = x[6000:9000]
    x[6000:9000] = np.clip(seg, -0.5 * seg.std(), 0.5 * seg.std())   # heavy clipping
    ep = preprocess_signal(x, sfreq)
    assert "flat" in ep[1].flags and not ep[1].scorable
    assert "clipped" in ep[2].flags and not ep[2].scorable


def test_resampler_ratio_and_length():
    r = StreamingResampler(256, 100)
    assert (r.up, r.down) == (25, 64)
    y, m = r.process(np.zeros(2560), np.zeros(2560, dtype=bool))
    assert len(y) == 1000 and not m.any()
