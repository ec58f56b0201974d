"""Streams as common acquisition programs publish them, each scored by a real
``sleepstream live`` process given the options the README tells such a user to give.

Peers in tests/peers/ import nothing of ours and copy each program's published metadata:
the OpenBCI GUI's LSL widget (``obci_eeg1``: 8 unlabelled channels, no units, 250 Hz),
muselsl's ``Muse`` stream (TP9 AF7 AF8 TP10 Right AUX, µV, 256 Hz, one sample a push) and
the BrainAmpSeries connector (32 referential channels with labels, µV, 500 Hz). They run
in liblsl's default session, as in test_lsl_interop.py (unique names and source_ids keep
parallel runs apart), a few epochs at a fast pace.
"""
from __future__ import annotations

import json
import uuid

import pytest
from test_lsl_interop import env_with, finish, lsl_defaults_only, procs, uid, wait_line  # noqa: F401

from scorer.hypnogram_file import read_rows
from sleepnet.stages import STAGES

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(180)]


def status_channels(stdout: str) -> set[str]:
    """The channels the ``status`` lines of ``live --status-json`` name."""
    lines = [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]
    return {ln["channel"] for ln in lines if ln.get("event") == "status"}


def scored(tsv, n: int) -> list[dict]:
    rows = read_rows(tsv)
    assert [r["epoch"] for r in rows] == list(range(n)), rows
    assert all(r["stage"] in STAGES for r in rows), rows
    return rows


def run_live(procs, tmp_path, *args: str, epochs: int = 2):
    tsv = tmp_path / f"night-{uuid.uuid4().hex[:6]}.tsv"
    p = procs.live(*args, "--epochs", str(epochs), "--out", str(tsv), "--status-json", "--no-outlets",
                   "--timeout", "20", env=env_with(None))
    out, err = finish(p)
    assert p.returncode == 0, err[-2000:]
    return tsv, out, err


def test_openbci_gui_stream_is_scored_from_a_channel_index_with_units_given(tmp_path, procs, lsl_defaults_only, liblsl_default_ports):
    """No labels and no units, as the GUI sends: `--channel-index 0 --units uV` scores
    channel 1 (the railed channels 2-8 would be flat, clipped or an artefact)."""
    name = uid("obci_eeg1")
    peer = procs.peer("openbci_gui.py", "--name", name, "--source-id", uid("openbcigui"), "--speed", "20",
                      env=env_with(None), cwd=tmp_path)
    wait_line(peer, "ready")
    tsv, out, err = run_live(procs, tmp_path, "--stream-name", name, "--channel-index", "0", "--units", "uV")
    rows = scored(tsv, 2)
    assert not any({"flat", "clipped", "artefact"} & set(r["flags"]) for r in rows), rows
    assert status_channels(out) == {"ch0"}
    assert "declares no unit" not in err


def test_muselsl_stream_is_scored_from_tp9(tmp_path, procs, lsl_defaults_only, liblsl_default_ports):
    """muselsl's stream, one sample a push at 256 Hz: `--channel TP9` (TP9 against the
    headband's Fpz reference) is scored; the floating Right AUX is not what is scored."""
    address = f"00:55:DA:{uuid.uuid4().hex[:2]}:{uuid.uuid4().hex[:2]}:{uuid.uuid4().hex[:2]}"
    peer = procs.peer("muselsl_stream.py", "--address", address, "--speed", "20", env=env_with(None), cwd=tmp_path)
    wait_line(peer, "ready")
    tsv, out, _ = run_live(procs, tmp_path, "--source-id", f"Muse{address}", "--channel", "TP9")
    rows = scored(tsv, 2)
    assert not any({"flat", "clipped", "artefact"} & set(r["flags"]) for r in rows), rows
    assert status_channels(out) == {"TP9"}


def test_brainamp_referential_channels_are_scored_as_a_derivation(tmp_path, procs, lsl_defaults_only, liblsl_default_ports):
    """The BrainAmpSeries connector's referential channels: `--channel 'F4-(TP9+TP10)/2'`
    (F4 against linked mastoids) is computed sample by sample, which cancels the
    reference's 650-µV wave that every channel carries: scored without an artefact flag,
    and named as scored; F4 alone keeps the wave and is flagged."""
    sid = uid("BrainAmpSeries-Dev_1_SR-500.000000")
    peer = procs.peer("brainamp_series.py", "--name", uid("BrainAmpSeries-Dev_1"), "--source-id", sid,
                      "--speed", "20", env=env_with(None), cwd=tmp_path)
    wait_line(peer, "ready")
    tsv, out, _ = run_live(procs, tmp_path, "--source-id", sid, "--channel", "F4-(TP9+TP10)/2")
    rows = scored(tsv, 2)
    assert not any({"artefact", "clipped", "flat"} & set(r["flags"]) for r in rows), rows
    assert status_channels(out) == {"F4-(TP9+TP10)/2"}
    tsv, out, _ = run_live(procs, tmp_path, "--source-id", sid, "--channel", "F4", epochs=1)
    assert all("artefact" in r["flags"] for r in read_rows(tsv)) and status_channels(out) == {"F4"}
