"""streamer over real LSL on loopback: finding streams, picking channels and units,
refusing what cannot be scored, gaps, stalls and an outlet that dies and comes back."""
from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest

from live_helpers import unique_ids
from sleepnet.preprocess import PreprocessConfig, Preprocessor
from streamer.buffer import RingBuffer
from streamer.epochs import EpochAssembler
from streamer.errors import StreamError, StreamNotFoundError
from streamer.resolve import StreamQuery, resolve_stream
from streamer.stream import EEGStream, SampleChunk, unit_scale_to_uv

pytestmark = pytest.mark.timeout(60)


def make_outlet(name: str, sid: str, labels: list[str] | None, sfreq: float = 100.0, units: str | None = "microvolts",
                fmt: str = "float32", stype: str = "EEG", n_channels: int | None = None) -> pylsl.StreamOutlet:
    n = n_channels or (len(labels) if labels else 1)
    info = pylsl.StreamInfo(name, stype, n, sfreq, fmt, sid)
    if labels:
        info.set_channel_labels(labels)
    if units:
        info.set_channel_units(units)
    return pylsl.StreamOutlet(info, 0, 360)


def connected(sid: str, **kw) -> EEGStream:
    s = EEGStream(resolve_stream(StreamQuery(source_id=sid), 5.0), **kw)
    s.connect(5.0)
    return s


def pull_until(stream: EEGStream, n: int, timeout: float = 10.0) -> list[SampleChunk]:
    chunks: list[SampleChunk] = []
    t_end = time.monotonic() + timeout
    while sum(len(c.samples_uv) + c.missing_before for c in chunks) < n and time.monotonic() < t_end:
        chunks += stream.acquire(0.1)
    return chunks


def push(outlet: pylsl.StreamOutlet, data: np.ndarray, t0: float, sfreq: float, first: int = 0) -> None:
    data = np.asarray(data, dtype=np.float32).reshape(len(data), -1)
    outlet.push_chunk(data, (t0 + (first + np.arange(len(data))) / sfreq).tolist())


def test_resolve_by_source_id_name_or_type_and_none_found_lists_visible_streams_within_timeout():
    name, sid = unique_ids()
    out = make_outlet(name, sid, ["Fpz-Cz"])
    assert resolve_stream(StreamQuery(source_id=sid), 5.0).name() == name
    assert resolve_stream(StreamQuery(name=name, stream_type="EEG"), 5.0).source_id() == sid
    assert StreamQuery.from_options() == StreamQuery(stream_type="EEG")
    t = time.monotonic()
    with pytest.raises(StreamNotFoundError) as e:
        resolve_stream(StreamQuery(source_id="no-such-source"), 1.0)
    elapsed = time.monotonic() - t
    msg = str(e.value)
    assert "no LSL stream matching source_id='no-such-source'" in msg and "\n" not in msg
    assert name in msg, "the message lists the streams that are visible"
    assert elapsed >= 1.0, "it looked for the whole timeout before giving up"
    # How soon after the timeout it gives up is a benchmark (benchmarks/startup.py), not a test.
    del out


def test_channel_is_picked_by_label_from_the_description_wherever_it_sits():
    name, sid = unique_ids()
    out = make_outlet(name, sid, ["EEG Pz-Oz", "EOG horizontal", "EEG Fpz-Cz"])
    s = connected(sid)  # default channel Fpz-Cz
    assert s.description.channel_index == 2 and s.description.channel_label == "EEG Fpz-Cz"
    assert out.wait_for_consumers(5)
    data = np.stack([np.full(50, 1.0), np.full(50, 2.0), np.arange(50.0)], axis=1)
    push(out, data, pylsl.local_clock(), 100.0)
    got = np.concatenate([c.samples_uv for c in pull_until(s, 50)])
    np.testing.assert_array_equal(got, np.arange(50.0))
    s.disconnect()
    s2 = connected(sid, channel_index=1)
    assert s2.description.channel_label == "EOG horizontal"
    s2.disconnect()
    with pytest.raises(StreamError, match=r"no channel matching 'C3'; it has: EEG Pz-Oz, EOG horizontal, EEG Fpz-Cz"):
        connected(sid, channel="C3")
    del s, s2
    del out


def test_volts_are_converted_to_microvolts_and_units_can_be_overridden():
    assert unit_scale_to_uv("µV") == unit_scale_to_uv("microvolts") == unit_scale_to_uv("-6") == 1.0
    assert unit_scale_to_uv("V") == unit_scale_to_uv("volts") == unit_scale_to_uv("0") == 1e6
    assert unit_scale_to_uv("mV") == 1e3 and unit_scale_to_uv("bpm") is None
    name, sid = unique_ids()
    out = make_outlet(name, sid, ["Fpz-Cz"], units="volts", fmt="double64")
    s = connected(sid)
    assert s.description.scale_to_uv == 1e6
    assert out.wait_for_consumers(5)
    push(out, np.array([[25e-6], [-40e-6]]), pylsl.local_clock(), 100.0)
    got = np.concatenate([c.samples_uv for c in pull_until(s, 2)])
    np.testing.assert_allclose(got, [25.0, -40.0])
    s.disconnect()
    s2 = connected(sid, units="uV")
    assert s2.description.scale_to_uv == 1.0
    s2.disconnect()
    del s, s2
    del out


def test_streams_that_cannot_be_scored_are_refused_with_a_clear_message():
    name, sid = unique_ids()
    irregular = make_outlet(name, sid, ["Fpz-Cz"], sfreq=pylsl.IRREGULAR_RATE)
    with pytest.raises(StreamError, match="irregular rate"):
        connected(sid)
    name2, sid2 = unique_ids()
    unlabelled = make_outlet(name2, sid2, None, n_channels=4, units=None)
    with pytest.raises(StreamError, match="carry no labels; choose one with --channel-index"):
        connected(sid2)
    name3, sid3 = unique_ids()
    not_voltage = make_outlet(name3, sid3, ["Fpz-Cz"], units="bpm")
    with pytest.raises(StreamError, match="not a voltage"):
        connected(sid3)
    del irregular, unlabelled, not_voltage


def test_gap_in_timestamps_becomes_missing_samples_and_a_gap_flag():
    name, sid = unique_ids()
    fs = 100.0
    out = make_outlet(name, sid, ["Fpz-Cz"])
    s = connected(sid, recent_s=60.0)
    assert out.wait_for_consumers(5)
    t0 = pylsl.local_clock()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(6000) * 30
    push(out, x[:1000], t0, fs)                 # samples 0..999
    push(out, x[1400:6000], t0, fs, first=1400)  # 400 samples (4 s) never sent
    chunks = pull_until(s, 6000)
    assert sum(c.missing_before for c in chunks) == 400
    assert s.gaps == 1 and s.samples_missing == 400 and s.samples_received == 5600
    asm = EpochAssembler(fs, PreprocessConfig())
    epochs = [e for c in chunks for e in asm.push(c)]
    assert [e.index for e in epochs] == [0, 1]
    assert epochs[0].epoch.missing_fraction == pytest.approx(400 / 3000)
    assert "gap" in epochs[0].epoch.flags and epochs[0].epoch.scorable   # 4 s < 7.5 s: still scored
    assert "gap" not in epochs[1].epoch.flags
    assert epochs[0].start_time == pytest.approx(t0, abs=1e-3)
    assert epochs[1].end_time == pytest.approx(t0 + 5999 / fs, abs=1e-3)
    recent = s.recent_uv(60.0)
    assert len(recent) == 6000 and np.isnan(recent[1000:1400]).all() and not np.isnan(recent[1400:]).any()
    s.disconnect()
    del s
    del out


def test_stall_timer_says_signal_lost_then_back_and_a_dead_outlet_is_reopened_by_source_id():
    name, sid = unique_ids()
    fs = 100.0
    out = make_outlet(name, sid, ["Fpz-Cz"])
    s = connected(sid, stall_timeout_s=0.5)
    assert out.wait_for_consumers(5)
    t0 = pylsl.local_clock()
    push(out, np.zeros(100), t0, fs)
    assert len(np.concatenate([c.samples_uv for c in pull_until(s, 100)])) == 100
    t_end = time.monotonic() + 5
    while not s.stalled and time.monotonic() < t_end:
        s.acquire(0.1)
    assert s.stalled and s.stalls == 1           # no sample for 0.5 s: signal lost
    del out                                       # the outlet dies...
    t_end = time.monotonic() + 5
    while s.connected and time.monotonic() < t_end:
        s.acquire(0.1)
    assert not s.connected and s.losses == 1
    out2 = make_outlet(name, sid, ["Fpz-Cz"])    # ...and comes back with the same source_id
    t_end = time.monotonic() + 10
    while not s.connected and time.monotonic() < t_end:
        s.acquire(0.1)
    assert s.connected
    assert out2.wait_for_consumers(5)
    t1 = pylsl.local_clock()
    push(out2, np.ones(50), t1, fs)
    downtime = round((t1 - (t0 + 99 / fs)) * fs) - 1
    chunks = pull_until(s, downtime + 50)         # the 50 may come in more than one pull
    assert not s.stalled
    # the downtime is a gap; its two ends carry the old and the new inlet's time corrections,
    # each an estimate (ms under load), so the count may differ from the outlet's by one sample
    assert abs(chunks[0].missing_before - downtime) <= 1, (chunks[0].missing_before, downtime)
    assert np.concatenate([c.samples_uv for c in chunks]).tolist() == [1.0] * 50
    s.disconnect()
    del s
    del out2


def test_epoch_assembler_gives_the_batch_epochs_for_any_chunking():
    fs = 256.0
    rng = np.random.default_rng(3)
    x = rng.standard_normal(int(fs * 30 * 3) + 77) * 40
    ref = Preprocessor(fs, PreprocessConfig()).push(x)
    asm = EpochAssembler(fs, PreprocessConfig())
    got = []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 3000))
        ts = 1000.0 + np.arange(pos, min(pos + n, len(x))) / fs
        got += asm.push(SampleChunk(x[pos:pos + n], ts, 0, 0.0))
        pos += n
    assert [e.index for e in got] == [e.index for e in ref] == [0, 1, 2]
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g.epoch.data, r.data)
        assert g.start_time == pytest.approx(1000.0 + g.index * 7680 / fs)
        assert g.end_time == pytest.approx(1000.0 + ((g.index + 1) * 7680 - 1) / fs)


def test_ring_buffer_keeps_only_the_latest_samples():
    rb = RingBuffer(5)
    rb.append(np.arange(3))
    np.testing.assert_array_equal(rb.latest(), [0, 1, 2])
    rb.append(np.arange(3, 7))
    np.testing.assert_array_equal(rb.latest(), [2, 3, 4, 5, 6])
    rb.append_missing(2)
    got = rb.latest()
    np.testing.assert_array_equal(got[:3], [4, 5, 6])
    assert np.isnan(got[3:]).all() and len(rb) == 5
    rb.append(np.arange(100))
    np.testing.assert_array_equal(rb.latest(2), [98, 99])
