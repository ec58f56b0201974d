"""replay over real LSL on loopback: every sample in order with exact timestamps, the
truth stream, pacing, files through the readers, and the command line."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pylsl
import pytest
from live_helpers import REPO, unique_ids, wait_for, write_simulated

from replay.player import INDEX_CHANNEL, Player, ReplayError, ReplaySource, load_source

pytestmark = pytest.mark.timeout(90)


def open_inlet(sid: str, timeout: float = 5.0, buflen: int = 3600) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", sid, 1, timeout)
    assert found, f"stream {sid} not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=buflen, recover=False)
    inlet.open_stream(timeout)
    return inlet


def pull_all(inlet: pylsl.StreamInlet, n: int, timeout: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    data, stamps = [], []
    got = 0
    t_end = time.monotonic() + timeout
    while got < n and time.monotonic() < t_end:
        d, t = inlet.pull_chunk(timeout=0.2, max_samples=65536, min_samples=1, as_numpy=True)
        if len(t):
            data.append(d)
            stamps.append(t)
            got += len(t)
    return np.concatenate(data), np.concatenate(stamps)


def source_with_labels(fs: float, n_epochs: int, extra: int = 0) -> ReplaySource:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(int(fs * 30 * n_epochs) + extra) * 30).astype(np.float32)
    return ReplaySource.from_arrays(x[:, None], fs, ["EEG Fpz-Cz"], labels=np.arange(n_epochs) % 5)


@pytest.mark.lsl
def test_replay_at_max_speed_delivers_every_sample_in_order_with_exact_timestamps():
    fs = 256.0
    src = source_with_labels(fs, 3, extra=123).with_index_channel()
    assert src.channels == ("EEG Fpz-Cz", INDEX_CHANNEL)
    name, sid = unique_ids()
    player = Player(src, name=name, source_id=sid, speed=None, chunk=997)
    player.start()
    inlet = open_inlet(sid)
    info = inlet.info(5)
    assert info.get_channel_labels() == ["EEG Fpz-Cz", INDEX_CHANNEL]
    assert info.get_channel_units() == ["microvolts", "none"]
    assert info.type() == "EEG" and info.nominal_srate() == fs and info.channel_format() == pylsl.cf_float32
    data, stamps = pull_all(inlet, src.n_samples)
    assert len(stamps) == src.n_samples
    np.testing.assert_array_equal(data[:, 1], np.arange(src.n_samples))   # nothing dropped or reordered
    np.testing.assert_array_equal(data[:, 0], src.data_uv[:, 0])           # float32 µV, bit for bit
    np.testing.assert_allclose(stamps, player.t0 + np.arange(src.n_samples) / fs, rtol=0, atol=1e-9)
    assert np.all(np.diff(stamps) > 0)
    del inlet
    result = player.join(10)
    assert result.samples_sent == src.n_samples and not result.stopped


@pytest.mark.lsl
def test_truth_stream_carries_one_marker_per_epoch_stamped_at_its_last_sample():
    fs = 100.0
    src = source_with_labels(fs, 4, extra=1500)
    name, sid = unique_ids()
    player = Player(src, name=name, source_id=sid, speed=None)
    player.start()
    truth = open_inlet(sid + "-truth")          # subscribe to the truth first, as the scorer does
    assert truth.info(5).name() == name + "-truth" and truth.info(5).type() == "Markers"
    eeg = open_inlet(sid)
    pull_all(eeg, src.n_samples)
    markers, stamps = [], []
    t_end = time.monotonic() + 5
    while len(markers) < 4 and time.monotonic() < t_end:
        m, t = truth.pull_chunk(timeout=0.2)
        markers += [v[0] for v in m]
        stamps += t
    assert markers == ["W", "N1", "N2", "N3"]
    np.testing.assert_allclose(stamps, [player.t0 + ((k + 1) * 3000 - 1) / fs for k in range(4)], atol=1e-9)
    del eeg, truth
    assert player.join(10).markers_sent == 4


@pytest.mark.lsl
def test_paced_replay_takes_at_least_duration_over_speed_and_keeps_recording_time_stamps():
    fs = 100.0
    src = source_with_labels(fs, 1)                 # 30 s of signal
    name, sid = unique_ids()
    player = Player(src, name=name, source_id=sid, speed=40.0, chunk=50)   # >= 0.75 s of wall time
    player.start()
    inlet = open_inlet(sid)
    t_start = time.monotonic()
    data, stamps = pull_all(inlet, src.n_samples)
    wall = time.monotonic() - t_start
    assert len(stamps) == src.n_samples
    assert wall >= 30.0 / 40.0 - 0.1, "a paced replay must not run ahead of speed x real time"
    assert stamps[-1] - stamps[0] == pytest.approx((src.n_samples - 1) / fs)
    del inlet
    player.join(10)


@pytest.mark.lsl
def test_loop_restarts_at_the_end_with_continuing_timestamps_and_stop_event_ends_it():
    fs = 100.0
    src = source_with_labels(fs, 1, extra=700)       # a partial epoch is not looped
    name, sid = unique_ids()
    stop = threading.Event()
    player = Player(src, name=name, source_id=sid, speed=120.0, chunk=400, loop=True)
    player.start(stop)
    inlet = open_inlet(sid)
    data, stamps = pull_all(inlet, 3 * 3000)
    stop.set()
    assert player.join(10).stopped
    np.testing.assert_array_equal(data[:9000, 0], np.tile(src.data_uv[:3000, 0], 3))
    np.testing.assert_allclose(stamps[:9000], player.t0 + np.arange(9000) / fs, atol=1e-9)
    del inlet


def test_bad_options_are_refused():
    src = source_with_labels(100.0, 1)
    with pytest.raises(ReplayError, match="speed"):
        Player(src, speed=0)
    with pytest.raises(ReplayError, match="chunk"):
        Player(src, chunk=0)
    with pytest.raises(ReplayError, match="^loop needs a finite speed"):
        Player(src, speed=None, loop=True)
    with pytest.raises(ReplayError, match="nothing to replay"):
        Player(ReplaySource.from_arrays(np.zeros((0, 1)), 100.0, ["Fpz-Cz"]))


def test_edf_is_read_with_its_channel_hypnogram_and_optionally_every_channel(shared_data):
    edf = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    hyp = shared_data / "sleep-edf" / "SC4001EC-Hypnogram.edf"
    src = load_source(edf, "Fpz-Cz", hypnogram=hyp)
    assert src.channels == ("EEG Fpz-Cz",) and src.sfreq == 100.0 and src.n_epochs == 10
    assert src.labels.tolist() == [0] * 10
    every = load_source(edf, all_channels=True)
    assert every.n_channels == 7 and "EEG Pz-Oz" in every.channels
    np.testing.assert_array_equal(every.data_uv[:, every.channels.index("EEG Fpz-Cz")], src.data_uv[:, 0])


@pytest.mark.lsl
def test_replay_command_streams_an_npz_with_its_truth(tmp_path):
    rec = write_simulated(tmp_path / "rec.npz", 128.0, 2)
    name, sid = unique_ids()
    proc = subprocess.Popen([sys.executable, "-m", "sleepstream.cli", "replay", str(rec), "--speed", "max",
                             "--name", name, "--source-id", sid, "--quiet", "--index-channel"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        truth = open_inlet(sid + "-truth", timeout=20)
        inlet = open_inlet(sid, timeout=20)
        data, _ = pull_all(inlet, 2 * 3840)
        np.testing.assert_array_equal(data[:, 1], np.arange(2 * 3840))
        markers = []
        t_end = time.monotonic() + 5
        while len(markers) < 2 and time.monotonic() < t_end:
            m, _ = truth.pull_chunk(timeout=0.2)
            markers += [v[0] for v in m]
        assert len(markers) == 2
        del inlet, truth
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "done: 7680 samples, 2 truth markers" in err


@pytest.mark.lsl
def test_replay_command_bad_input_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "replay", str(tmp_path / "missing.npz")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.npz: no such file" in r.stderr


@pytest.mark.lsl
def test_max_speed_in_process_never_runs_further_ahead_of_its_consumer_than_the_lead():
    src = source_with_labels(100.0, 4)
    name, sid = unique_ids()
    taken = {"n": 0, "asked": 0}

    def position() -> int:
        taken["asked"] += 1
        return taken["n"]

    player = Player(src, name=name, source_id=sid, speed=None, chunk=100, wait_for_consumer=False,
                    consumer_position=position, max_lead_s=10.0)
    stop = threading.Event()
    player.start(stop)

    def settles_at(n: int) -> None:
        wait_for(lambda: player.samples_sent >= n, 10, f"{n} samples sent")
        asked = taken["asked"]
        # the player asked where its consumer is 5 more times and each time held back
        wait_for(lambda: taken["asked"] >= asked + 5, 10, "the player to ask again")
        assert player.samples_sent == n

    settles_at(1000)          # 10 s of signal ahead of a consumer that took nothing, and no more
    taken["n"] = 5000
    settles_at(6000)
    stop.set()
    assert player.join(10).stopped


@pytest.mark.lsl
def test_a_fast_replay_tells_consumers_how_much_buffer_it_needs():
    from streamer.stream import replay_buffer_s

    src = source_with_labels(100.0, 4)              # 120 s of signal
    for speed, wanted in ((None, 180), (100.0, 180), (1.0, None)):
        player = Player(src, name=unique_ids()[0], source_id=unique_ids()[1], speed=speed)
        player.open()
        assert replay_buffer_s(player.stream_info()) == wanted
        player.close()
    long_src = ReplaySource.from_arrays(np.zeros((100 * 3600 * 2, 1), np.float32), 100.0, ["Fpz-Cz"])
    player = Player(long_src, name=unique_ids()[0], source_id=unique_ids()[1], speed=None)
    player.open()
    # capped in bytes: one float32 channel costs ~100 B a queued sample, so 10 MB hold 1000 s at 100 Hz
    assert replay_buffer_s(player.stream_info(), max_bytes=10_000_000) == 1000
    player.close()


def test_epochs_counted_where_30_s_is_not_a_whole_number_of_samples():
    """At 100.01 Hz an epoch is 3000.3 samples: 30 000 samples hold 9 complete epochs (the
    10th would end at sample 30 002), not 30 000 // 3000 = 10; a loop's pass ends inside the
    data and every epoch counted has its last sample (its truth marker's time) in the file."""
    src = ReplaySource.from_arrays(np.zeros((30_000, 1), dtype=np.float32), 100.01, ["Fpz-Cz"])
    assert src.n_epochs == 9
    assert src.epoch_last_sample(src.n_epochs - 1) < src.n_samples <= src.epoch_last_sample(src.n_epochs)
    assert ReplaySource.from_arrays(np.zeros((30_000, 1), dtype=np.float32), 100.0, ["Fpz-Cz"]).n_epochs == 10
