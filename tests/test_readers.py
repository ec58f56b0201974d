"""Readers: both npz formats, EDF/BDF through MNE with tolerant channel picking, hypnograms."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import eeg_like

from sleepnet.errors import InputFileError
from sleepnet.io.hypnograms import read_hypnogram
from sleepnet.io.recordings import read_recording, write_continuous_npz


def _write_edf(path, signals: dict[str, np.ndarray], sfreq: float):
    import mne

    info = mne.create_info(list(signals), sfreq, ch_types="eeg")
    raw = mne.io.RawArray(np.stack(list(signals.values())) * 1e-6, info, verbose="error")
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")


def test_continuous_npz_round_trip(tmp_path):
    x = eeg_like(95, 128, seed=1)
    labels = np.array([0, 1, 2], dtype=np.int8)
    write_continuous_npz(tmp_path / "n.npz", x, 128, labels, channel="Fpz-Cz")
    rec = read_recording(tmp_path / "n.npz")
    assert rec.sfreq == 128 and rec.n_epochs == 3 and rec.channel == "Fpz-Cz"
    np.testing.assert_array_equal(rec.eeg_uv, x)
    np.testing.assert_array_equal(rec.labels, labels)


@pytest.mark.parametrize("shape", [(4, 3000), (4, 1, 3000)])
def test_windowed_npz_rows_are_consecutive_epochs(tmp_path, shape):
    x = np.arange(4 * 3000, dtype=np.float32).reshape(shape) % 97
    np.savez(tmp_path / "s.npz", x=x, Y=np.array([0, 2, 2, 3]))
    rec = read_recording(tmp_path / "s.npz")
    assert rec.sfreq == 100 and rec.n_epochs == 4
    np.testing.assert_array_equal(rec.eeg_uv, x.reshape(-1))
    np.testing.assert_array_equal(rec.labels, [0, 2, 2, 3])


def test_windowed_npz_of_sliding_five_epoch_windows(tmp_path):
    epochs = np.random.default_rng(0).normal(0, 30, (8, 3000)).astype(np.float32)
    windows = np.stack([epochs[i:i + 5] for i in range(4)])[:, :, None, :]  # (4, 5, 1, 3000)
    np.savez(tmp_path / "w.npz", X=windows, y=np.array([1, 2, 3, 4]))
    rec = read_recording(tmp_path / "w.npz")
    np.testing.assert_array_equal(rec.eeg_uv, epochs.reshape(-1))
    np.testing.assert_array_equal(rec.labels, [-1, -1, -1, -1, 1, 2, 3, 4])


def test_windowed_npz_scalar_label_and_volts(tmp_path):
    np.savez(tmp_path / "v.npz", data=np.full((2, 3000), 20e-6, dtype=np.float32), labels=np.array(3))
    rec = read_recording(tmp_path / "v.npz")
    assert rec.eeg_uv.max() == pytest.approx(20.0)
    np.testing.assert_array_equal(rec.labels, [3, 3])


@pytest.mark.parametrize("arrays,message", [
    ({"foo": np.zeros(3)}, "no signal found"),
    ({"X": np.zeros((3, 100))}, "expected \\(n, 3000\\)"),
    ({"eeg": np.zeros((2, 100)), "sfreq": 100.0}, "must be 1-D"),
    ({"eeg": np.zeros(9000)}, "needs 'sfreq'"),
    ({"eeg": np.zeros(9000), "sfreq": 100.0, "labels": np.array([0, 7, 1])}, "found \\[7\\]"),
    ({"eeg": np.zeros(9000), "sfreq": 100.0, "labels": np.zeros(9)}, "9 labels for a signal of only 3"),
])
def test_bad_npz_files_get_a_clear_line(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputFileError, match=message) as err:
        read_recording(tmp_path / "bad.npz")
    assert str(tmp_path / "bad.npz") in str(err.value)


def test_edf_channel_pick_is_tolerant_and_converts_volts(tmp_path):
    x = eeg_like(60, 100, seed=3)
    _write_edf(tmp_path / "r.edf", {"EEG Pz-Oz": x * 0.5, "EEG Fpz-Cz": x}, 100)
    for name in ("EEG Fpz-Cz", "Fpz-Cz", "fpz cz", "FPZ-CZ"):
        rec = read_recording(tmp_path / "r.edf", name)
        assert rec.channel == "EEG Fpz-Cz"
        np.testing.assert_allclose(rec.eeg_uv, x, atol=0.05)  # EDF is 16-bit


def test_edf_without_the_channel_lists_what_it_has(tmp_path):
    _write_edf(tmp_path / "r.edf", {"EEG C3": eeg_like(30, 100)}, 100)
    with pytest.raises(InputFileError, match="no channel matching 'Fpz-Cz'; it has: EEG C3"):
        read_recording(tmp_path / "r.edf")


def test_truncated_edf_gets_a_clear_line(tmp_path):
    _write_edf(tmp_path / "r.edf", {"EEG Fpz-Cz": eeg_like(120, 100)}, 100)
    data = (tmp_path / "r.edf").read_bytes()
    (tmp_path / "t.edf").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputFileError, match="t.edf"):
        read_recording(tmp_path / "t.edf")


def test_real_sleep_edf_excerpt(shared_data):
    rec = read_recording(shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf", "Fpz-Cz")
    assert rec.channel == "EEG Fpz-Cz" and rec.sfreq == 100 and rec.n_epochs == 10
    assert 10 < rec.eeg_uv.std() < 200  # µV, not volts


def test_sleep_edf_hypnogram_merges_3_and_4_and_drops_movement(shared_data):
    h = read_hypnogram(shared_data / "sleep-edf" / "SC4001EC-Hypnogram.edf")
    assert len(h) == 2880
    assert set(np.unique(h)) == {-1, 0, 1, 2, 3, 4}
    assert (h[:10] == 0).all()
    txt = read_hypnogram(shared_data / "hypnograms" / "sleep-edf-sc" / "SC4001E0.txt")
    np.testing.assert_array_equal(txt, h[: len(txt)])  # same night, two formats


def test_hmc_scoring_reads_with_its_n1_n2_n3_texts(shared_data):
    h = read_hypnogram(shared_data / "hypnograms" / "hmc" / "SN001-scoring.edf")
    assert len(h) >= 850
    counts = np.bincount(h[h >= 0], minlength=5)
    assert (counts > 0).all()


@pytest.mark.parametrize("text,expected", [
    ("W\nN1\nN2\nN3\nR\nREM\n", [0, 1, 2, 3, 4, 4]),
    ("epoch,stage\n0,W\n1,N2\n2,?\n", [0, 2, -1]),
    ("onset\tduration\tstage\n0\t30\t0\n30\t30\t4\n", [0, 4]),
    ("W\r1\r2\r3\r4\rR\r?\r", [0, 1, 2, 3, 3, 4, -1]),
])
def test_text_hypnograms(tmp_path, text, expected):
    (tmp_path / "h.txt").write_text(text)
    np.testing.assert_array_equal(read_hypnogram(tmp_path / "h.txt"), expected)


def test_unknown_hypnogram_text_is_named(tmp_path):
    (tmp_path / "h.txt").write_text("W\nN2\nDEEP\n")
    with pytest.raises(InputFileError, match="unknown stage 'DEEP' on epoch 2"):
        read_hypnogram(tmp_path / "h.txt")


def test_hypnogram_of_another_recording_is_refused(tmp_path):
    (tmp_path / "h.txt").write_text("?\n?\n?\nW\nN2\n")
    with pytest.raises(InputFileError, match="no scored epoch"):
        read_hypnogram(tmp_path / "h.txt", n_epochs=3)
