"""`sleepstream ward --gate`: every bed's worker runs `live --gate`, with per-bed rules.

The rules (``--gate``, ``--gate-bed PATTERN=RULES``) parsed once by the ward and written
per bed as a rule file that reads back as the same rule; a bad rule is one line and exit
2 before anything starts; the worker's ``gate`` JSON lines (from the restart close on)
feed each bed's window state, which the screen shows. Over real LSL with real processes:
a plain pylsl stimulus program (tests/peers/gate_listener.py, imports nothing of ours)
hears ``<bed>-gate`` markers from a ward bed, and when that bed's worker is SIGKILLed
the ward's restarted worker first says ``close`` / ``restart``; a bed with
``--gate-bed ...=off`` publishes no gate."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from live_helpers import REPO, PipeText, Valve, simulated_eeg, wait_for
from test_gate import FS, PEERS, WAKE_EPOCHS, Lines, gated_source

from scorer.gate.rules import DEFAULT_RULE, GateRuleError, parse_rule
from scorer.gate.window import CLOSE, OPEN
from scorer.hypnogram_file import read_rows
from scorer.records import ScoredEpoch
from scorer.ward.gates import gate_plan, write_rule_file

pytestmark = pytest.mark.timeout(200)


# --------------------------------------------------------------------------- rules per bed

def test_gate_bed_rules_go_to_matching_beds_first_match_wins_off_means_no_gate_and_gate_is_the_rest():
    plan = gate_plan("", ["bed-3=stages=N3,epochs=3", "bed-4*=off", "bed-*=min_probability=0.9"])
    assert plan.rule_for("bed-3").stages == frozenset({"N3"}) and plan.rule_for("bed-3").epochs == 3
    assert plan.rule_for("bed-4") is None and plan.rule_for("bed-41") is None
    assert plan.rule_for("bed-1").min_probability == 0.9            # the third pattern
    assert plan.rule_for("icu-1") == DEFAULT_RULE                    # no pattern: --gate's rule
    only = gate_plan(None, ["bed-2=default"])                        # without --gate: only bed-2 gated
    assert only.rule_for("bed-2") == DEFAULT_RULE and only.rule_for("bed-1") is None and only.any
    assert not gate_plan(None, []).any


@pytest.mark.parametrize("gate, beds, library, command", [
    ("stages=N5", [], "gate='stages=N5': unknown stage(s) ['N5']", "--gate 'stages=N5': unknown stage(s) ['N5']"),
    (None, ["bed-2=epochs=0"], "gate_bed bed-2: 'epochs=0': epochs must be at least 1",
     "--gate-bed bed-2: 'epochs=0': epochs must be at least 1"),
    ("", ["bed-2"], "gate_bed='bed-2': expected PATTERN=RULES", "--gate-bed 'bed-2': expected PATTERN=RULES"),
    ("", ["=off"], "gate_bed='=off': expected PATTERN=RULES", "--gate-bed '=off': expected PATTERN=RULES"),
])
def test_bad_ward_gate_rules_name_the_parameter_and_the_ward_says_its_option(gate, beds, library, command):
    from sleepstream.cli import build_parser

    with pytest.raises(GateRuleError) as e:
        gate_plan(gate, beds)
    assert str(e.value).startswith(library), str(e.value)
    assert e.value.naming(build_parser().parse_args(["ward"])._flags).startswith(command)


def test_a_beds_rule_file_reads_back_as_the_same_rule_guard_thresholds_included(tmp_path):
    toml = tmp_path / "rules.toml"
    toml.write_text('[gate]\nstages = ["N3"]\nmin_probability = 0.85\nepochs = 3\nmax_open_s = 600\n'
                    'guard = false\n[guard]\nhf_ratio = 5.5\nconfirm_hops = 2\n')
    for rule in (DEFAULT_RULE, parse_rule(str(toml)), parse_rule("stages=N2,epochs=4,max_open_s=90.5")):
        path = write_rule_file(rule, tmp_path / "bed.gate.toml", "a header\nof two lines")
        assert parse_rule(str(path)) == rule
    assert parse_rule(str(toml)).thresholds.hf_ratio == 5.5


def test_a_beds_rule_file_keeps_a_guard_check_turned_off(tmp_path):
    """``sustained_ratio = false`` (off, None) must read back off, not as its default 2.5:
    else a ward given such a rule refuses to start ('does not read back as written')."""
    toml = tmp_path / "rules.toml"
    toml.write_text("[gate]\n[guard]\nsustained_ratio = false\n")
    rule = parse_rule(str(toml))
    assert rule.thresholds.sustained_ratio is None
    path = write_rule_file(rule, tmp_path / "bed.gate.toml")
    assert parse_rule(str(path)) == rule


def test_worker_command_runs_live_gate_with_the_beds_rule_file(tmp_path):
    from scorer.ward.worker import WorkerOptions, worker_command

    plain = worker_command("sid", tmp_path / "b.tsv", "b", WorkerOptions())
    gated = worker_command("sid", tmp_path / "b.tsv", "b", WorkerOptions(), tmp_path / "b.gate.toml")
    assert "--gate" not in plain
    assert gated[:len(plain)] == plain and gated[len(plain):] == ["--gate", str((tmp_path / "b.gate.toml").resolve())]


@pytest.mark.lsl
def test_a_bad_ward_gate_rule_is_one_line_exit_2_and_no_worker_or_folder(tmp_path):
    for extra in (["--gate", "stages=N2+XX"], ["--gate-bed", "bed-*=epochs=two"], ["--gate", str(tmp_path / "no.toml")]):
        out = tmp_path / "ward"
        r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "ward", "--out", str(out), "--no-display",
                            *extra], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (extra, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
        assert "gate" in r.stderr and r.stdout == ""
        assert not out.exists()          # the ward stopped before making its folder: no worker started


# --------------------------------------------------------------------------- the worker's gate lines

def rec(k: int, stage: str = "N2", p: float = 0.9) -> ScoredEpoch:
    probs = [0.025] * 5
    probs[("W", "N1", "N2", "N3", "REM").index(stage)] = p
    return ScoredEpoch(k, 30.0 * k, 30.0 * k + 29.99, stage, tuple(probs), p, (), 3.0)


def test_worker_gate_lines_start_with_the_restart_close_and_drive_the_beds_window_state():
    from scorer.gate.sink import GateSink
    from scorer.json_lines import JsonLinesSink
    from scorer.ward.state import BedState, GateChange, GateState

    gate = GateSink(100.0, parse_rule("epochs=2,guard=false"))       # callbacks only: no outlet
    buf = io.StringIO()
    sink = JsonLinesSink(buf, epoch_offset=40)                        # a restart: the file had 40 epochs
    sink.follow_gate(gate)
    for r in (rec(0), rec(1), rec(2), rec(3, "REM")):
        gate.publish(r)
        sink.publish(r)
    gate.close()
    lines = [json.loads(ln) for ln in buf.getvalue().splitlines()]
    gates = [ln for ln in lines if ln["event"] == "gate"]
    assert [(g["kind"], g["reason"]) for g in gates] == [(CLOSE, "restart"), (OPEN, "N2/N3 p>=0.80 x2"),
                                                         (CLOSE, "stage REM")]
    assert gates[0]["epoch"] is None and gates[1]["epoch"] == 41 and gates[2]["epoch"] == 43
    assert lines.index(gates[1]) < lines.index(next(ln for ln in lines if ln.get("epoch") == 41 and ln["event"] == "epoch"))
    assert [g["stamp"] for g in gates] == sorted(g["stamp"] for g in gates)
    assert gates[2]["time"] == pytest.approx(rec(3).end_time)

    bed = BedState("bed-1", "sid", "bed 1", 100.0, Path("bed-1.tsv"), gate=GateState("N2/N3 p>=0.80 x2"))
    assert bed.gate.open is None
    got = [bed.apply(ln, 1000.0 + k) for k, ln in enumerate(lines)]
    changes = [g for g in got if isinstance(g, GateChange)]
    assert [(c.kind, c.reason) for c in changes] == [(g["kind"], g["reason"]) for g in gates]
    g = bed.gate
    assert g.open is False and g.last_close_reason == "stage REM" and (g.opens, g.closes) == (1, 2)
    assert g.since_wall_s == 1000.0 + lines.index(gates[2])
    assert bed.epochs == 4
    g.worker_ended(2000.0)                                  # closed already: closed since it closed
    assert g.open is False and g.last_close_reason == "worker ended" and g.since_wall_s == 1000.0 + lines.index(gates[2])
    g.apply(GateChange(OPEN, "N2/N3 p>=0.80 x2", 500.0, 500.0, 50, 3000.0))
    g.worker_ended(3100.0)                                  # killed while open: its outlet went with it
    assert g.open is False and g.last_close_reason == "worker ended" and g.since_wall_s == 3100.0


# --------------------------------------------------------------------------- the screen

def gated_ward():
    from scorer.display_state import DisplayState
    from scorer.ward.state import BedState, GateChange, GateState, WardState

    state = WardState(Path("ward"), "type EEG")
    for i in range(4):
        bed = BedState(f"bed-{i + 1}", f"amp-{i + 1}", f"bed {i + 1}", 100.0, Path(f"bed-{i + 1}.tsv"),
                       display=DisplayState(f"bed-{i + 1}"), gate=GateState("N2/N3 p>=0.80 x2") if i < 3 else None)
        for k in range(6):
            r = rec(k, "N2")
            bed.apply({"event": "epoch", **{**r.__dict__, "probabilities": list(r.probabilities),
                                            "flags": []}}, 1.8e9)
        state.beds.append(bed)
    g1, g2 = state.beds[0].gate, state.beds[1].gate
    g1.apply(GateChange(CLOSE, "restart", 0.0, 0.0, None, 1.8e9 - 900))
    g1.apply(GateChange(OPEN, "N2/N3 p>=0.80 x2", 60.0, 60.0, 1, 1.8e9 - 125))
    g2.apply(GateChange(OPEN, "N2/N3 p>=0.80 x2", 60.0, 60.0, 1, 1.8e9 - 600))
    g2.apply(GateChange(CLOSE, "arousal: hf", 70.0, 70.0, None, 1.8e9 - 42))
    return state


@pytest.mark.parametrize("width, height", [(80, 24), (200, 60)])
def test_ward_screen_shows_each_beds_gate_open_or_closed_since_when_and_why_it_last_closed(width, height):
    from test_ward import screen_text

    from scorer.ward.screen import render

    state = gated_ward()
    lines = screen_text(render(state, width, height, now_wall_s=1.8e9), width, height)
    assert all(len(ln) <= width for ln in lines)
    assert "gate" in lines[1]
    rows = {f"bed-{i}": next(ln for ln in lines if f" bed-{i} " in ln) for i in range(1, 5)}
    assert "open 2m" in rows["bed-1"]
    assert "closed 42s" in rows["bed-2"]
    if width >= 120:
        assert "closed 42s arousal: hf" in rows["bed-2"]
    assert "waiting" in rows["bed-3"]                       # gated; its worker has not said yet
    assert rows["bed-4"].rstrip().endswith("—")             # no gate on this bed
    assert "open" not in rows["bed-4"] and "closed" not in rows["bed-4"]
    detail = screen_text(render(state, width, height, selected=1, now_wall_s=1.8e9), width, height)
    assert len(detail) <= height and "bed 2 of 4: bed-2" in detail[-1] and "Esc" in detail[-1]
    assert "stimulation window closed 42s arousal: hf · rule N2/N3 p>=0.80 x2 · opened 1x" in detail[-2]
    state.beds[0].gate = state.beds[1].gate = state.beds[2].gate = None
    plain = screen_text(render(state, width, height, now_wall_s=1.8e9), width, height)
    assert "gate" not in plain[1]                           # a ward without --gate: no gate column


# --------------------------------------------------------------------------- real processes

def start_listener(name: str, tmp_path: Path, timeout: float, recover: bool) -> tuple[subprocess.Popen, Lines, Path]:
    """The plain pylsl stimulus program (tests/peers/gate_listener.py) on stream ``name``."""
    stop = tmp_path / f"stop-{name}"
    err = open(tmp_path / f"{name}.stderr", "w")
    proc = subprocess.Popen([sys.executable, str(PEERS / "gate_listener.py"), "--name", name, "--timeout",
                             str(timeout), "--stop-file", str(stop)] + ([] if recover else ["--no-recover"]),
                            cwd=tmp_path, env=dict(os.environ), text=True, stdout=subprocess.PIPE, stderr=err)
    return proc, Lines(proc), stop


GATE_LINE = re.compile(r" gate  (open|close)\s+(.*?)(?:  \(epoch \d+\))?$")


def dedup(events: list) -> list:
    """``events`` without consecutive repeats."""
    return [e for k, e in enumerate(events) if k == 0 or e != events[k - 1]]


def ward_children(ward_pid: int) -> dict[str, int]:
    """The ward's live workers, by bed (their --outlet-name)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{ward_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if "--outlet-name" in argv:
                out[argv[argv.index("--outlet-name") + 1]] = int(pid)
    return out


@pytest.mark.slow
@pytest.mark.lsl
@pytest.mark.timeout(240)
def test_ward_bed_gate_markers_reach_a_plain_pylsl_listener_and_a_killed_workers_restart_says_close_restart(
        tmp_path):
    import pylsl

    from replay.player import Player, ReplaySource

    tag = f"wg{uuid.uuid4().hex[:8]}"
    bed_a, bed_b = f"{tag}-A", f"{tag}-B"
    src, _ = gated_source(with_events=False)              # N2/N3 the default model opens windows in
    sleep_only = ReplaySource.from_arrays(src.data_uv[WAKE_EPOCHS * int(30 * FS):], FS, ["Fpz-Cz"])
    xb, _ = simulated_eeg(100.0, 3, seed=51)
    stop = threading.Event()
    # Bed A's replay is held until the listener has heard bed A's scorer say close/restart
    # (at the start, and again after the kill): the window can open only then, so what the
    # listener hears does not depend on whether it or the scorer got going first on a
    # loaded machine (a listener that comes late hears the state of that moment instead,
    # which is right but not what this test pins). Bed B loops: its stream never ends, so
    # its worker never has a reason to exit.
    valve = Valve(held=True)
    players = [Player(sleep_only, name=bed_a, source_id=f"{tag}-sid-A", speed=20.0, loop=True,
                      consumer_position=valve.position, max_lead_s=Valve.MAX_LEAD_S),
               Player(ReplaySource.from_arrays(xb[:, None], 100.0, ["Fpz-Cz"]), name=bed_b,
                      source_id=f"{tag}-sid-B", speed=20.0, loop=True)]
    valve.player = players[0]
    for p in players:
        p.start(stop)
    out = tmp_path / "ward"
    ward = subprocess.Popen([sys.executable, "-m", "sleepstream.cli", "ward", "--name", f"{tag}-*", "--out", str(out),
                             "--no-display", "--no-outlets", "--gate", "epochs=2,guard=false",
                             "--gate-bed", "*-B=off", "--find-timeout", "20"], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ward_log, ward_err = PipeText(ward.stdout), PipeText(ward.stderr)
    proc, lines, stop_listener = start_listener(bed_a + "-gate", tmp_path, timeout=200, recover=False)
    killed = None
    try:
        lines.wait(lambda m: m["event"] == "subscribed", 60, "the listener to find <bed>-gate")
        first = lines.wait(lambda m: m["event"] in (OPEN, CLOSE), 60, "the worker's first marker")
        assert (first["event"], first["reason"]) == (CLOSE, "restart"), lines.got
        valve.release()
        lines.wait(lambda m: m["event"] == OPEN, 90, "a window to open on the ward's bed")
        # the worker pushes the marker, then writes its line (on its writer thread): killed
        # in between, the ward never learns that the window was open
        wait_for(lambda: any(f" {bed_a} " in ln + " " and (m := GATE_LINE.search(ln)) and m.group(1) == OPEN
                             for ln in ward_log.text().splitlines()), 30, "the ward to log the window's open")
        workers = ward_children(ward.pid)
        assert set(workers) == {bed_a, bed_b}, workers
        killed = workers[bed_a]
        os.kill(killed, signal.SIGKILL)                   # no chance to close anything
        killed_at = pylsl.local_clock()
        valve.hold()                                      # the restarted worker stays closed until heard
        n_before = len(lines.got)
        # the listener (recover=False) learns at once that the stream is gone: closed for it
        lost = lines.wait(lambda m: m["event"] in (OPEN, CLOSE, "lost"), 30, "the listener to see the stream lost")
        assert lost["event"] == "lost", lines.got
        said = lines.wait(lambda m: m["event"] in (OPEN, CLOSE), 90, "the restarted worker's first marker")
        assert (said["event"], said["reason"]) == (CLOSE, "restart"), lines.got
        assert said["received"] > lost["received"] and said["stamp"] > killed_at
        valve.release()
        again = lines.wait(lambda m: m["event"] == OPEN, 90, "a window to open again once the rule is met")
        assert again["stamp"] > said["stamp"]
        assert lines.got.index(said) >= n_before
        wait_for(lambda: (out / f"{bed_b}.tsv").exists() and len(read_rows(out / f"{bed_b}.tsv")) >= 2,
                 60, "bed B's epochs")
        restarted = ward_children(ward.pid).get(bed_a)
        assert restarted is not None and restarted != killed
    finally:
        stop_listener.touch()
        proc.wait(20)
        if ward.poll() is None:
            ward.send_signal(signal.SIGTERM)              # the ward stops its workers
        try:
            ward.wait(60)
        except subprocess.TimeoutExpired:
            ward.kill()
            ward.wait()
        stdout, stderr = ward_log.rest(), ward_err.rest()
        # for a failure's post-mortem (pytest shows a test's output only when it fails)
        print(f"ward stdout:\n{stdout[-6000:]}\nward stderr:\n{stderr[-3000:]}")
        for log in sorted(out.glob("*.log")):
            print(f"{log.name}:\n{log.read_text(errors='replace')[-2000:]}")
        stop.set()
        for p in players:
            p.join(10)
    assert ward.returncode == 0, stderr[-2000:]
    opens = sum(1 for ln in stdout.splitlines() if f" {bed_a} " in ln + " " and GATE_LINE.search(ln)
                and GATE_LINE.search(ln).group(1) == OPEN)
    # exactly the one restart we caused: bed B's replay loops, so its stream never ends and
    # its worker never exits
    summary = re.search(r"2 beds, .*?(\d+) worker restarts, 1 gated bed opened (\d+) windows?\b", stderr)
    assert summary and int(summary.group(1)) == 1 and int(summary.group(2)) == opens, stderr[-500:]
    restarted_notes = [ln for ln in stdout.splitlines() if "worker restarted" in ln]
    assert len(restarted_notes) == 1 and f" {bed_a} " in restarted_notes[0] + " ", restarted_notes
    # the ward's plain log: one line per gate event of bed A, from both its workers; none for bed B
    log_a = [ln for ln in stdout.splitlines() if f" {bed_a} " in ln + " "]
    gate_a = [m.groups() for m in (GATE_LINE.search(ln) for ln in log_a) if m]
    assert gate_a.count((CLOSE, "restart")) == 2, stdout
    after = log_a[next(k for k, ln in enumerate(log_a) if "worker restarted" in ln):]
    assert next(m.groups() for m in map(GATE_LINE.search, after) if m) == (CLOSE, "restart"), after
    assert [g[0] for g in gate_a].count(OPEN) >= 2
    assert any("killed by signal 9" in ln and "its stimulation window was open" in ln for ln in log_a), log_a
    assert not any(" gate " in ln for ln in stdout.splitlines() if f" {bed_b} " in ln + " ")
    assert "stimulation windows: gate N2/N3 p>=0.80 x2; *-B: off" in stdout
    # the listener heard, in order, what the ward logged (a scorer says its state again when a
    # listener connects, so a repeated marker is the same event): it was there before each
    # worker's first open, so nothing is missing before what it heard last
    heard = dedup([(m["event"], m["reason"]) for m in lines.got if m["event"] in (OPEN, CLOSE)])
    logged = dedup(gate_a)
    assert len(heard) >= 4 and heard == logged[:len(heard)], (heard, logged)
    # the rule each bed ran is on file: bed A's reads back as --gate's, bed B has none
    assert parse_rule(str(out / f"{bed_a}.gate.toml")) == parse_rule("epochs=2,guard=false")
    assert not (out / f"{bed_b}.gate.toml").exists()
