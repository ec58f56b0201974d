"""sleepstream among other LSL apps: real peers, each a separate process that imports
nothing of ours (tests/peers/*.py, run with this Python), in liblsl's default session.

* A plain pylsl amplifier outlet (Fp1 and Fpz-Cz at 250 Hz, µV in its description) is
  scored by ``sleepstream live`` given no LSL option, and a plain pylsl inlet receives
  our ``-stage`` and ``-probabilities`` streams and reads their descriptions.
* mne-lsl's PlayerLSL plays the real Sleep-EDF excerpt (float64 volts, real time,
  no waiting for consumers) and mne-lsl's StreamLSL reads our probabilities.
* With an lsl_api.cfg (LSLAPICFG) naming another SessionID, the scorer and peers in
  that session find each other; ``--session-id`` joins it too; without either, the
  scorer does not see the stream and says how to look further.

Network rule of these tests: traffic stays on loopback. A process that only serves an
outlet may run with liblsl's pure defaults (an outlet listens and answers; it sends no
queries), and the amplifier and player peers do. A process that resolves streams sends
queries, which liblsl's pure defaults multicast and broadcast on every interface, so
the resolving peers run with an lsl_api.cfg that keeps liblsl's default session but
resolves on this machine only (``ResolveScope = machine``, ``KnownPeers =
{127.0.0.1}``). Our own CLI gets no configuration at all: with none, sleepstream's
default is exactly that (this machine, default session). The test run's own session
(conftest.py sets LSLAPICFG) is taken out of these processes' environment; unique stream
names and source_ids keep parallel runs apart instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from scorer.hypnogram_file import read_rows
from sleepnet.stages import STAGES
from sleepstream.lsl_config import CONFIG_ENV, CONFIG_NAME

REPO = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "peers"
EXCERPT = REPO.parent / "shared" / "data" / "sleep-edf" / "SC4001E0-PSG-first300s.edf"

pytestmark = [pytest.mark.slow, pytest.mark.lsl, pytest.mark.timeout(240)]

# liblsl's default session, resolution on this machine only: for the peers that resolve.
RESOLVE_ON_THIS_MACHINE = ("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"
                           "[lab]\nKnownPeers = {127.0.0.1}\n")


@pytest.fixture
def lsl_defaults_only() -> None:
    """Skip where a user-wide LSL configuration would replace liblsl's defaults."""
    for p in (Path.home() / "lsl_api" / CONFIG_NAME, Path("/etc/lsl_api") / CONFIG_NAME, REPO / CONFIG_NAME):
        if p.exists():
            pytest.skip(f"{p} exists: these tests need liblsl's default configuration")


def env_with(cfg: Path | None = None) -> dict[str, str]:
    """This environment without the test run's LSL session; with ``cfg`` as LSLAPICFG."""
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    if cfg is not None:
        env[CONFIG_ENV] = str(cfg)
    return env


def write_cfg(path: Path, session_id: str | None = None) -> Path:
    text = RESOLVE_ON_THIS_MACHINE + (f"SessionID = {session_id}\n" if session_id else "")
    path.write_text(text)
    return path


class Procs:
    """Processes a test started; all stopped at the end (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def peer(self, script: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
        """Run a peer script; its stderr (liblsl's own log among it) goes to a file in
        ``cwd``, so a pipe nobody reads can never block it."""
        err = open(cwd / f"{Path(script).stem}-{len(self.procs)}.stderr", "w+")
        p = subprocess.Popen([sys.executable, str(PEERS / script), *args], cwd=cwd, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=err)
        p.stderr_file = err  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def live(self, *args: str, env: dict[str, str]) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "sleepstream.cli", "live", "--no-display", *args], cwd=REPO,
                             env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def live_rows(self, tsv: Path, *args: str, env: dict[str, str], timeout: float = 120) -> list[dict]:
        """Run ``sleepstream live ... --out tsv`` to its end; it must exit 0 (else fail with
        its stderr). Returns the rows of its hypnogram file."""
        live = self.live(*args, "--out", str(tsv), env=env)
        _, err = finish(live, timeout=timeout)
        assert live.returncode == 0, err[-2000:]
        return read_rows(tsv)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr, getattr(p, "stderr_file", None)):
                if f is not None:
                    f.close()


def peer_stderr(proc: subprocess.Popen) -> str:
    f = proc.stderr_file  # type: ignore[attr-defined]
    f.flush()
    f.seek(0)
    return f.read()[-1500:]


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.stop()


def wait_line(proc: subprocess.Popen, word: str, timeout: float = 60) -> None:
    """Read the process's stdout until a line ``word`` (it prints it when ready)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        line = proc.stdout.readline()
        if line.strip() == word:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"peer ended (rc {proc.returncode}) before '{word}': {peer_stderr(proc)}")
    raise AssertionError(f"peer did not say '{word}' within {timeout:g} s")


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    return out, err


def peer_json(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"peer failed (rc {proc.returncode}): {out[-500:]} {peer_stderr(proc)}"
    return json.loads(lines[-1])


def uid(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def model_id_of(tsv: Path) -> str:
    line = next(ln for ln in tsv.read_text().splitlines() if ln.startswith("# session "))
    return next(f.split("=", 1)[1] for f in line.split() if f.startswith("model="))


def test_plain_pylsl_amplifier_is_scored_with_no_lsl_options_and_a_plain_inlet_reads_our_stages(
        tmp_path, procs, lsl_defaults_only, liblsl_default_ports):
    """A plain pylsl outlet with liblsl's defaults (default session), Fp1 flat and
    Fpz-Cz EEG-like in µV at 250 Hz: `sleepstream live` without --network or
    --session-id finds it, scores Fpz-Cz (a flat Fp1 would give unscored epochs), and a
    plain pylsl inlet (default session, resolving on this machine only) gets every
    stage and probability row the hypnogram file holds, with descriptions that follow
    LSL's conventions."""
    name, out_name = uid("amp"), uid("scorer")
    amp = procs.peer("pylsl_outlet.py", "--name", name, "--source-id", f"{name}:sn1234", "--channels", "Fp1,Fpz-Cz",
                     "--rate", "250", "--unit", "microvolts", "--speed", "5", "--flat", "Fp1",
                     env=env_with(None), cwd=tmp_path)
    wait_line(amp, "ready")
    cfg = write_cfg(tmp_path / "resolve-here.cfg")
    inlet = procs.peer("pylsl_inlet.py", "--name", out_name + "-stage", "--name", out_name + "-probabilities",
                       "--count", "2", "--timeout", "120", env=env_with(cfg), cwd=tmp_path)
    tsv = tmp_path / "night.tsv"
    rows = procs.live_rows(tsv, "--stream-name", name, "--epochs", "2", "--outlet-name", out_name, "--timeout", "20",
                           env=env_with(None))
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all(r["stage"] in STAGES and "flat" not in r["flags"] for r in rows), rows   # Fpz-Cz, in µV
    got = peer_json(inlet)
    stage, probs = got[out_name + "-stage"], got[out_name + "-probabilities"]
    assert [s[0] for s in stage["samples"]] == [r["stage"] for r in rows]
    np.testing.assert_allclose(stage["timestamps"], [r["end_time"] for r in rows], atol=1e-3)
    p = np.array(probs["samples"])
    ref = np.array([[r[f"p_{s}"] for s in STAGES] + [r["confidence"]] for r in rows])
    np.testing.assert_allclose(p, ref, atol=1e-3)
    np.testing.assert_allclose(p[:, :5].sum(axis=1), 1.0, atol=1e-4)

    model_id = model_id_of(tsv)
    for key, kind, fmt, channels in (
            ("-stage", "Markers", "string", [("stage", "none", "Markers")]),
            ("-probabilities", "Probabilities", "float32",
             [(f"p_{s}", "probability", "MISC") for s in STAGES] + [("confidence", "probability", "MISC")])):
        root = ET.fromstring(got[out_name + key]["xml"])
        assert root.findtext("name") == out_name + key and root.findtext("type") == kind
        assert root.findtext("channel_format") == fmt and float(root.findtext("nominal_srate")) == 0.0
        assert int(root.findtext("channel_count")) == len(channels)
        assert [(c.findtext("label"), c.findtext("unit"), c.findtext("type"))
                for c in root.findall("desc/channels/channel")] == channels
        assert root.findtext("desc/acquisition/manufacturer") == "sleepstream"
        assert root.findtext("desc/acquisition/model") == model_id
        assert [(int(lb.findtext("code")), lb.findtext("stage")) for lb in root.findall("desc/label_map/label")] \
            == list(enumerate(STAGES))
        assert json.loads(root.findtext("desc/label_map_json")) == {str(i): s for i, s in enumerate(STAGES)}
        assert root.findtext("desc/source_stream") == name and root.findtext("desc/epoch_s") == "30"


def test_mne_lsl_player_of_the_real_excerpt_is_scored_and_mne_lsl_streamlsl_reads_our_probabilities(
        tmp_path, procs, lsl_defaults_only, liblsl_default_ports):
    """mne-lsl's PlayerLSL plays 40 s of the real Sleep-EDF excerpt (Fpz-Cz and Pz-Oz,
    float64 volts, unit as MNE's power of ten, real time, no waiting for consumers);
    `sleepstream live` with no LSL option scores its Fpz-Cz from volts; mne-lsl's
    StreamLSL (default session, resolving on this machine only) reads our
    probabilities stream as an MNE stream and gets the row the hypnogram holds."""
    if not EXCERPT.exists():
        pytest.skip(f"real data file {EXCERPT} is absent")
    pytest.importorskip("mne_lsl", reason="mne-lsl is in the test extra: pip install -e '.[test]'")
    name, out_name = uid("mne-player"), uid("scorer")
    player = procs.peer("mne_lsl_player.py", "--edf", str(EXCERPT), "--name", name, "--source-id", name,
                        "--seconds", "40", env=env_with(None), cwd=tmp_path)
    wait_line(player, "playing", timeout=90)
    cfg = write_cfg(tmp_path / "resolve-here.cfg")
    consumer = procs.peer("mne_lsl_stream.py", "--name", out_name + "-probabilities", "--count", "1",
                          "--timeout", "150", env=env_with(cfg), cwd=tmp_path)
    tsv = tmp_path / "night.tsv"
    (row,) = procs.live_rows(tsv, "--stream-name", name, "--channel", "EEG Fpz-Cz", "--epochs", "1",
                             "--outlet-name", out_name, "--timeout", "30", env=env_with(None), timeout=150)
    assert row["stage"] in STAGES and not {"flat", "clipped"} & set(row["flags"]), row   # volts -> µV
    got = peer_json(consumer, timeout=150)
    assert got["ch_names"] == [f"p_{s}" for s in STAGES] + ["confidence"]
    assert set(got["ch_types"]) == {"misc"} and got["sfreq"] == 0.0
    assert len(got["samples"]) >= 1 and len(got["samples"][0]) == 6
    ref = [row[f"p_{s}"] for s in STAGES] + [row["confidence"]]
    np.testing.assert_allclose(got["samples"][-1], ref, atol=1e-3)
    np.testing.assert_allclose(got["timestamps"][-1], row["end_time"], atol=1e-3)


def test_scorer_and_peers_in_another_session_find_each_other_through_lslapicfg_or_session_id(
        tmp_path, procs, lsl_defaults_only, liblsl_default_ports):
    """An LSLAPICFG whose SessionID is not the default: a plain outlet and a plain
    inlet in that session, and `sleepstream live` given the same file (used as it is)
    find each other; `--session-id` alone joins the session too; with neither, the
    scorer (default session) does not see the stream, exits 2 and says how to look
    further."""
    session = uid("lab-session")
    cfg = write_cfg(tmp_path / "lab.cfg", session)
    name, out_name = uid("amp"), uid("scorer")
    amp = procs.peer("pylsl_outlet.py", "--name", name, "--source-id", name, "--channels", "Fpz-Cz", "--rate", "100",
                     "--speed", "10", env=env_with(cfg), cwd=tmp_path)
    wait_line(amp, "ready")

    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "live", "--no-display", "--stream-name", name,
                        "--timeout", "2"], cwd=REPO, env=env_with(None), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"no LSL stream matching name={name!r}" in r.stderr and "--session-id" in r.stderr, r.stderr
    assert "this machine only" in r.stderr and "--network" in r.stderr

    inlet = procs.peer("pylsl_inlet.py", "--name", out_name + "-stage", "--count", "1", "--timeout", "120",
                       env=env_with(cfg), cwd=tmp_path)
    tsv = tmp_path / "night.tsv"
    # Four epochs (12 s at 10x) keep our outlet up long enough for the inlet to find it on a
    # loaded machine; whichever epoch it gets first must be the hypnogram file's row. (Not a
    # loosened check, judged in issue 22: LSL delivers only what is pushed after an inlet
    # subscribes, and when a peer process subscribes is not ours to wait for; the stage it
    # gets must still be exactly the row stamped the same, to 1 ms.)
    rows = procs.live_rows(tsv, "--stream-name", name, "--epochs", "4", "--outlet-name", out_name, "--timeout", "20",
                           env=env_with(cfg))
    got = peer_json(inlet)
    ((stage,),), (stamp,) = got[out_name + "-stage"]["samples"][:1], got[out_name + "-stage"]["timestamps"][:1]
    row = min(rows, key=lambda r: abs(r["end_time"] - stamp))
    assert abs(row["end_time"] - stamp) < 1e-3 and stage == row["stage"], (stage, stamp, rows)
    assert ET.fromstring(got[out_name + "-stage"]["xml"]).findtext("session_id") == session

    tsv2 = tmp_path / "night2.tsv"
    assert len(procs.live_rows(tsv2, "--stream-name", name, "--epochs", "1", "--outlet-name", out_name,
                               "--timeout", "20", "--session-id", session, env=env_with(None))) == 1
