"""The fault matrix (issue 19): real ``sleepstream`` processes, real LSL, real faults on this machine.

Each scenario starts the real command, does to it what a bad night does, and measures what
the user would see:

* ``gate_close_after_scorer_stop_s``: ``sleepstream live --gate`` (a looping N2/N3 stretch
  of a simulated night replayed at 30x, rule ``epochs=1,guard=false,min_probability=0.5,max_open_s=7200``)
  with a window open is SIGSTOPped; seconds from the SIGSTOP until a listener process using
  the shipped ``sleepstream.GateListener`` reports closed (its ``on_close`` callback; when
  ``is_open``, polled every 5 ms, turned false is in the detail), and apart until the plain
  README listener (``tests/peers/gate_listener.py``, plain pylsl) prints ``expired``. After
  each stop, SIGCONT, and the next trial waits for the window to open again. ``--repeats``
  trials; the figure is the worst, the note gives the median. Target < 2.5 s (the lease
  is 2 s, renewed every 0.25 s).
* ``gate_close_after_network_drop_s``: the network between the scorer and its listeners
  drops while the scorer runs on. Two network namespaces made by this benchmark and joined
  by a veth pair (10.19.0.1/30 and .2, used only here): the replay and the scorer in one
  (LSL on its own loopback), the two listeners in the other (``KnownPeers`` the scorer's
  address); the drop is ``ip link set <the listeners' end> down`` (the veth has no netem
  here: the kernel has no ``sch_netem``), restored with ``up`` after each trial. Timed
  from just before the ``ip`` command. Needs root and ``ip``: otherwise the figure is
  None with the reason. The namespaces (and with them the veth pair) are deleted in all
  cases.
* ``epochs_scored_while_terminal_stalled``: ``sleepstream live --out`` with its screen
  (stdout and stderr) on a pty nobody reads, a simulated night of ``--epochs`` epochs
  replayed at ``--speed max``: TSV rows against the epochs sent (target: equal); whether the
  pty really stopped taking output is checked (poll). Then the pty is read (the screen
  catches up) and the scorer stopped: its summary gives the epochs it scored. And apart,
  ``live --status-json --epochs N --out`` into a pipe nobody reads.
* ``windows_open_while_not_recording``: ``live --gate --status-json --out`` under a file
  size limit (RLIMIT_FSIZE, SIGXFSZ ignored: writes fail with EFBIG as a full disk fails
  with ENOSPC) that the disk fills after ~8 rows; once a status line says NOT RECORDING with
  3 rows kept, the limit is lifted from outside (``prlimit``). Every status and epoch line
  read in order, the window state followed from the ``gate`` lines: lines where a window is
  open while ``recording`` is false (target 0); and whether the window open when the disk
  failed closed with reason ``not recording``.
* ``hung_worker_restart_s``: ``sleepstream ward --hang-timeout T`` following one replayed
  bed; its worker is SIGSTOPped; seconds until the ward has started a new worker for the bed
  (target <= T + 5 s), for each T of ``--hang-timeouts`` (5 s, and the default 20 s).
* ``rows_lost``: for every scenario that writes a TSV, the epochs the process says it scored
  (its summary line; for the ward, its summary's epochs) minus the distinct epochs on disk,
  summed (target 0).
* ``rss_mb_100khz_stream``, ``bad_streams_refused`` / ``bad_streams_tried``:
  :func:`benchmarks.bad_streams.measure` (see that module).

    .venv/bin/python -m benchmarks.faults [--repeats 5] [--epochs 960] [--hang-timeouts 5,20]
        [--no-netns] [--no-bad-streams]

Writes ``benchmarks/results/faults.json``. The timings depend on the machine's load (recorded
with them): a stopped process is stopped however loaded the machine, but a listener's thread
and the ward's loop must get the CPU to notice.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sleepstream.testing import UnreadTerminal

from . import common

MODULE = "benchmarks.faults"
FS = 100.0
LEASE_TARGET_S = 2.5
HANG_SLACK_S = 5.0
PLAIN_LISTENER = common.REPO / "tests" / "peers" / "gate_listener.py"
GATE_RULE = "epochs=1,guard=false,min_probability=0.5,max_open_s=7200"
HOLD_S = 1.0                    # a window held open this long (plus up to one renewal period) before a fault
NET = ("10.19.0.1", "10.19.0.2", 30)   # the scorer's end, the listeners' end: a /30 used only here

#: The listener process using the shipped class: one JSON line per change, with its
#: CLOCK_MONOTONIC time; the main thread polls ``is_open`` every 5 ms (what a stimulus
#: program checking before each stimulus sees). Ends when its stdin closes.
SHIPPED_LISTENER = """\
import json, sys, threading, time
import sleepstream

lock = threading.Lock()

def say(event, reason=""):   # from the listener's thread and this one: one whole line at a time
    line = json.dumps({"event": event, "reason": reason, "t": time.monotonic()}) + "\\n"
    with lock:
        sys.stdout.write(line)
        sys.stdout.flush()

done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
with sleepstream.GateListener(sys.argv[1], on_open=lambda r, s: say("open", r),
                              on_close=lambda r, s: say("close", r)) as gate:
    if gate.wait_connected(120):
        say("connected")
    was = False
    while not done.is_set():
        now = gate.is_open
        if now != was:
            say("is_open" if now else "is_closed", gate.reason)
            was = now
        time.sleep(0.005)
"""

FSIZE_WRAPPER = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                 "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY)); "
                 "sys.argv[0] = 'sleepstream'; from sleepstream.cli import main; sys.exit(main(sys.argv[2:]))")


# --------------------------------------------------------------------------- small pieces

class Lines:
    """The lines a process prints on stdout, read on a thread (a pipe never left unread),
    JSON parsed where they are JSON, each with ``_t``: the monotonic time it was read."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.got: list[dict] = []
        self._th = threading.Thread(target=self._read, daemon=True)
        self._th.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            try:
                d = json.loads(line)
            except ValueError:
                d = None
            if not isinstance(d, dict):
                d = {"event": line}
            d["_t"] = time.monotonic()
            self.got.append(d)

    def wait(self, cond: Callable[[dict], bool], timeout: float, what: str, start: int = 0) -> dict:
        """The first line from index ``start`` on that meets ``cond`` (waiting up to ``timeout`` s)."""
        t_end = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.got):
                if cond(self.got[i]):
                    return self.got[i]
                i += 1
            if time.monotonic() > t_end:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            if self.proc.poll() is not None and i >= len(self.got):
                self._th.join(1.0)
                if i >= len(self.got):
                    raise RuntimeError(f"{what}: the process ended (rc {self.proc.returncode})")
            time.sleep(0.01)


def wait(cond: Callable[[], bool], timeout: float, what: str, poll_s: float = 0.02) -> None:
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll_s)


def distinct_rows(path: Path) -> tuple[int, int]:
    """(distinct epochs, rows) of a hypnogram file (0, 0 when absent)."""
    from scorer.hypnogram_file import read_rows

    if not path.exists():
        return 0, 0
    rows = read_rows(path)
    return len({r["epoch"] for r in rows}), len(rows)


SUMMARY_RE = re.compile(r"(\d+) epochs \((\d+) scored, (\d+) unscored\)")
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def summary_epochs(text: str) -> int | None:
    """The epochs of ``live``'s summary line (``N epochs (S scored, U unscored), ...``)."""
    found = SUMMARY_RE.findall(ANSI_RE.sub("", text))
    return int(found[-1][0]) if found else None


def loss_entry(scenario: str, scored: int | None, path: Path, source: str) -> dict:
    """One scenario's share of ``rows_lost``: epochs the process scored minus distinct epochs on disk."""
    distinct, rows = distinct_rows(path)
    lost = None if scored is None else max(0, scored - distinct)
    return {"scenario": scenario, "epochs_scored": scored, "scored_from": source, "epochs_on_disk": distinct,
            "rows": rows, "duplicate_rows": rows - distinct, "lost": lost,
            "extra_rows": None if scored is None else max(0, distinct - scored)}


def end(proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGCONT (in case), SIGTERM, then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sleep_stretch_file(folder: Path) -> Path:
    """A stretch of N2/N3 cut from a simulated night (the default model scores it N2/N3
    with p >= 0.5, so a looping replay holds a window open), as our continuous npz."""
    from sleepnet.io.recordings import write_continuous_npz
    from sleepnet.sim.night import simulate_night

    night = simulate_night(2.0, 7, FS)
    lab, n, k = night.labels, int(30 * FS), 14
    s0 = next(i for i in range(60, len(lab) - k) if np.all(np.isin(lab[i:i + k], (2, 3))))
    path = folder / "n2n3-stretch.npz"
    write_continuous_npz(path, night.eeg_uv[s0 * n:(s0 + k) * n], FS)
    return path


def start_listeners(gate_name: str, folder: Path, wrap: list[str] | None = None,
                    env: dict | None = None) -> tuple[dict, list[subprocess.Popen], Path]:
    """The shipped-class listener and the plain README listener, as processes (``wrap``:
    a prefix such as ``ip netns exec NS``). Returns ({label: Lines}, processes, stop file)."""
    wrap = wrap or []
    stop = folder / f"stop-{uuid.uuid4().hex[:6]}"
    shipped = subprocess.Popen([*wrap, sys.executable, "-c", SHIPPED_LISTENER, gate_name], cwd=common.REPO, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=open(folder / "shipped-listener.stderr", "w"), text=True)
    plain = subprocess.Popen([*wrap, sys.executable, str(PLAIN_LISTENER), "--name", gate_name, "--timeout", "1200",
                              "--stop-file", str(stop)], cwd=common.REPO, env=env, stdout=subprocess.PIPE,
                             stderr=open(folder / "plain-listener.stderr", "w"), text=True)
    return {"shipped": Lines(shipped), "plain": Lines(plain)}, [shipped, plain], stop


def stop_listeners(procs: list[subprocess.Popen], stop_file: Path) -> None:
    stop_file.touch()
    try:
        procs[0].stdin.close()
    except OSError:
        pass
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def listener_state(label: str, lines: Lines) -> bool:
    """Whether the window is open for this listener, by its latest line."""
    for d in reversed(lines.got):
        ev = d.get("event")
        if label == "shipped" and ev in ("open", "close"):
            return ev == "open"
        if label == "plain" and ev in ("open", "close", "expired", "lost"):
            return ev == "open"
    return False


def is_close(label: str, d: dict) -> bool:
    return d.get("event") in (("close",) if label == "shipped" else ("close", "expired", "lost"))


def lapse_trials(listeners: dict, repeats: int, cut: Callable[[], None], restore: Callable[[], None],
                 what: str, alive: Callable[[], bool]) -> tuple[list[dict], list[dict], str | None]:
    """``repeats`` trials: with the window open for every listener (for HOLD_S and a random
    part of a renewal period), ``cut()``; the time until each listener takes the window as
    closed, and why; then ``restore()`` and wait for the window to open again. A trial where
    a listener heard the scorer's own ``close`` (sent before the cut) is set aside and tried
    again. Returns (trials, set aside, what went wrong or None); the trials done before
    something went wrong are kept."""
    trials: list[dict] = []
    aside: list[dict] = []

    def all_open() -> bool:
        return all(listener_state(k, v) for k, v in listeners.items())

    try:
        while len(trials) < repeats and len(aside) <= repeats:
            wait(lambda: all_open() or not alive(), 120, f"{what}: a window open for both listeners")
            if not alive():
                raise RuntimeError(f"{what}: the scorer ended")
            time.sleep(HOLD_S + random.uniform(0.0, 0.25))
            if not all_open():
                continue                                   # the scorer closed it meanwhile: wait again
            marks = {k: len(v.got) for k, v in listeners.items()}
            t0 = time.monotonic()
            cut()
            t_cut = time.monotonic()
            try:
                got = {k: v.wait(lambda d, k=k: is_close(k, d), 15, f"{what}: the {k} listener's close", marks[k])
                       for k, v in listeners.items()}
            finally:
                restore()
            closed = next((d for d in listeners["shipped"].got[marks["shipped"]:] if d["event"] == "is_closed"), None)
            trial = {"n": len(trials) + len(aside), "cut_s": round(t_cut - t0, 4)}
            for k, d in got.items():
                trial[f"{k}_s"] = round(d.get("t", d.get("received", d["_t"])) - t0, 4)
                trial[f"{k}_reason"] = d.get("reason") or d["event"]
            trial["shipped_is_open_false_s"] = None if closed is None else round(closed["t"] - t0, 4)
            lapsed = (trial["shipped_reason"] in ("lease expired", "stream lost")
                      and trial["plain_reason"] in ("expired", "lost"))
            (trials if lapsed else aside).append(trial)
            common.progress(f"{what}: shipped listener closed after {trial['shipped_s']:.2f} s ({trial['shipped_reason']}), "
                            f"plain after {trial['plain_s']:.2f} s ({trial['plain_reason']})")
    except (TimeoutError, RuntimeError) as exc:
        tails = {k: [{kk: vv for kk, vv in d.items() if kk != "_t"} for d in v.got[-4:]] for k, v in listeners.items()}
        return trials, aside, f"{exc} (the listeners' last lines: {json.dumps(tails)})"
    return trials, aside, None


def lapse_figures(name: str, what: str, trials: list[dict], aside: list[dict], command: str,
                  extra: str, detail: dict, error: str | None = None) -> list[common.Figure]:
    figures = []
    for label, words in (("shipped", "the shipped sleepstream.GateListener (on_close)"),
                         ("plain", "the plain README listener (tests/peers/gate_listener.py)")):
        xs = [t[f"{label}_s"] for t in trials]
        worst = max(xs) if xs else None
        med = float(np.median(xs)) if xs else None
        fig_name = name if label == "shipped" else f"{name}_plain_listener"
        note = (f"{what}, until {words} takes the window as closed: worst of {len(xs)}, median {med:.2f} s"
                if xs else f"{what}: no trial completed") + extra
        if aside:
            note += f"; {len(aside)} trial(s) set aside (the scorer's own close was in flight)"
        if error:
            note += f"; STOPPED EARLY: {error[:200]}"
        figures.append(common.Figure(fig_name, worst, "s", f"< {LEASE_TARGET_S:g} s",
                                     None if worst is None else worst < LEASE_TARGET_S and not error, command, note,
                                     {"trials": trials, "set_aside": aside, "worst_s": worst, "median_s": med,
                                      "error": error, **detail}))
    return figures


def gated_live(sid: str, gname: str, out: Path, *extra: str) -> list[str]:
    return common.sleepstream("live", "--source-id", sid, "--no-display", "--no-outlets", "--outlet-name", gname,
                              "--gate", GATE_RULE, "--out", out, "--timeout", "60", *extra)


# --------------------------------------------------------------------------- scenarios

def scorer_stop(repeats: int, folder: Path) -> dict:
    """SIGSTOP of ``live --gate`` with a window open, ``repeats`` times."""
    from replay.player import Player, load_source

    src = load_source(sleep_stretch_file(folder))
    name, sid = common.unique("stop")
    gname = name + "-stim"
    player = Player(src, name=name, source_id=sid, speed=30.0, loop=True)
    stop_player = threading.Event()
    player.start(stop_player)
    out = folder / "scorer-stop.tsv"
    cmd = gated_live(sid, gname, out)
    scorer = common.popen(cmd)
    listeners, procs, stop_file = start_listeners(gname + "-gate", folder, env=dict(os.environ))
    try:
        trials, aside, error = lapse_trials(listeners, repeats, lambda: scorer.send_signal(signal.SIGSTOP),
                                            lambda: scorer.send_signal(signal.SIGCONT), "SIGSTOP of live --gate",
                                            lambda: scorer.poll() is None)
    finally:
        end(scorer)
        stop_listeners(procs, stop_file)
        stop_player.set()
        player.join(10)
    _, err = common.outputs(scorer)
    return {"trials": trials, "aside": aside, "error": error, "command": common.shell(cmd), "rc": scorer.returncode,
            "loss": loss_entry("SIGSTOP of live --gate", summary_epochs(err), out, "summary"),
            "stderr_tail": err[-600:]}


@contextmanager
def namespace_pair(tag: str) -> Iterator[dict]:
    """Two network namespaces of this benchmark joined by a veth pair (10.19.0.1/30 in
    ``scorer``, .2 in ``listeners``), loopback up in each; deleted (with the pair) on exit."""
    names = {"scorer": f"ssf-{tag}-s", "listeners": f"ssf-{tag}-l"}
    dev = {"scorer": f"ssf{tag}s", "listeners": f"ssf{tag}l"}
    made: list[str] = []

    def ip(*a: str) -> None:
        r = subprocess.run(["ip", *a], capture_output=True, text=True, timeout=20)
        if r.returncode:
            raise RuntimeError(f"ip {' '.join(a)}: {r.stderr.strip()}")

    def terminated(signum, frame):       # a SIGTERMed benchmark still deletes its namespaces
        raise SystemExit(128 + signum)

    old_term = signal.signal(signal.SIGTERM, terminated) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        for ns in names.values():
            ip("netns", "add", ns)
            made.append(ns)
        ip("-n", names["scorer"], "link", "add", dev["scorer"], "type", "veth", "peer", "name", dev["listeners"],
           "netns", names["listeners"])
        for side, addr in (("scorer", NET[0]), ("listeners", NET[1])):
            ip("-n", names[side], "addr", "add", f"{addr}/{NET[2]}", "dev", dev[side])
            ip("-n", names[side], "link", "set", "lo", "up")
            ip("-n", names[side], "link", "set", dev[side], "up")
        yield {"ns": names, "dev": dev, "ip": ip}
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def lsl_config_for(folder: Path, peer: str, session: str, label: str) -> Path:
    """An lsl_api.cfg as the benchmark's (this session, liblsl's log off, IPv6 off) whose
    KnownPeers is ``peer``."""
    from sleepstream.lsl_config import MACHINE_ONLY, with_session

    path = folder / f"lsl-{label}.cfg"
    path.write_text(with_session(MACHINE_ONLY.replace("{127.0.0.1}", "{" + peer + "}"), session))
    return path


def network_drop(repeats: int, folder: Path, session: str) -> dict:
    """The listeners' network drops (veth link down) while the scorer runs on."""
    if os.geteuid() != 0:
        return {"skipped": "needs root (network namespaces and a veth pair)"}
    if shutil.which("ip") is None:
        return {"skipped": "needs the `ip` command (iproute2)"}
    npz = sleep_stretch_file(folder)
    name, sid = common.unique("net")
    gname = name + "-stim"
    out = folder / "network-drop.tsv"
    tag = uuid.uuid4().hex[:6]
    player = scorer = None
    procs: list[subprocess.Popen] = []
    stop_file = folder / "none"
    trials: list[dict] = []
    aside: list[dict] = []
    error = None
    try:
        with namespace_pair(tag) as net:
            ns, dev, ip = net["ns"], net["dev"], net["ip"]
            env_s = dict(os.environ, LSLAPICFG=str(lsl_config_for(folder, "127.0.0.1", session, "scorer")))
            env_l = dict(os.environ, LSLAPICFG=str(lsl_config_for(folder, NET[0], session, "listeners")))
            in_s = ["ip", "netns", "exec", ns["scorer"]]
            replay_cmd = common.sleepstream("replay", npz, "--speed", "30", "--loop", "--quiet", "--name", name,
                                            "--source-id", sid)
            cmd = gated_live(sid, gname, out)
            try:
                player = common.popen([*in_s, *replay_cmd], env=env_s)
                scorer = common.popen([*in_s, *cmd], env=env_s)
                listeners, procs, stop_file = start_listeners(gname + "-gate", folder,
                                                              ["ip", "netns", "exec", ns["listeners"]], env_l)
                rows_during: list[list[int]] = []

                def cut() -> None:
                    rows_during.append([distinct_rows(out)[0]])
                    ip("-n", ns["listeners"], "link", "set", dev["listeners"], "down")

                def restore() -> None:
                    rows_during[-1].append(distinct_rows(out)[0])
                    ip("-n", ns["listeners"], "link", "set", dev["listeners"], "up")

                trials, aside, error = lapse_trials(listeners, repeats, cut, restore, "network drop (veth down)",
                                                    lambda: scorer.poll() is None)
                for t in trials + aside:
                    a, b = rows_during[t["n"]]
                    t["scorer_epochs_during_drop"] = b - a
            finally:
                end(scorer)
                if procs:
                    stop_listeners(procs, stop_file)
                end(player)
    except RuntimeError as exc:        # the namespaces or the veth pair could not be made
        if scorer is None:
            return {"skipped": str(exc)}
        raise
    _, err = common.outputs(scorer)
    return {"trials": trials, "aside": aside, "error": error, "command": common.shell(cmd), "replay": common.shell(replay_cmd),
            "rc": scorer.returncode, "loss": loss_entry("network drop", summary_epochs(err), out, "summary"),
            "stderr_tail": err[-600:]}


def night_player(n_epochs: int):
    """The first ``n_epochs`` of the cached simulated 8-h night, replayed at max speed (started)."""
    from replay.player import Player, ReplaySource, load_source

    src = load_source(common.simulated_night_file(8.0))
    x = src.data_uv[: n_epochs * int(30 * FS)]
    name, sid = common.unique("stall")
    player = Player(ReplaySource.from_arrays(x, FS, ["Fpz-Cz"]), name=name, source_id=sid, speed=None,
                    linger_s=120.0)
    stop = threading.Event()
    player.start(stop)
    return player, stop, sid


def terminal_stalled(n_epochs: int, folder: Path) -> dict:
    """``live --out`` with its screen on a pty nobody reads."""
    player, stop, sid = night_player(n_epochs)
    out = folder / "terminal-stalled.tsv"
    cmd = common.sleepstream("live", "--source-id", sid, "--out", out, "--no-outlets", "--timeout", "60")
    terminal = UnreadTerminal(cmd, cwd=common.REPO)
    proc = terminal.proc
    blocked_at_rows = None
    t0 = time.monotonic()
    try:
        last, last_t = -1, time.monotonic()
        while True:                       # until every epoch is on disk, or none came for 20 s
            rows = distinct_rows(out)[0]
            if blocked_at_rows is None and not terminal.takes_output():
                blocked_at_rows = rows
            if rows >= n_epochs or proc.poll() is not None:
                break
            if rows != last:
                last, last_t = rows, time.monotonic()
            elif time.monotonic() - last_t > 20:
                break
            time.sleep(0.05)
        stalled_s = time.monotonic() - t0
        rows_stalled = distinct_rows(out)[0]
        # the terminal is read again: the screen catches up; then the scorer is stopped
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            terminal.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        t_end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < t_end:
            terminal.read()
            time.sleep(0.05)
        end(proc)
        terminal.read()
    finally:
        terminal.close()
        stop.set()
        player.join(10)
    text = terminal.screen.decode(errors="replace")
    return {"epochs_expected": n_epochs, "epochs_on_disk_while_stalled": rows_stalled, "stalled_s": round(stalled_s, 1),
            "pty_stopped_taking_output": blocked_at_rows is not None, "rows_when_pty_filled": blocked_at_rows,
            "rc": proc.returncode, "command": common.shell(cmd) + "  (stdout and stderr: a pty nobody reads)",
            "loss": loss_entry("terminal stalled (pty unread)", summary_epochs(text), out, "summary on the pty"),
            "screen_tail": ANSI_RE.sub("", text)[-600:]}


def status_pipe_unread(n_epochs: int, folder: Path) -> dict:
    """``live --status-json --epochs N --out`` into a pipe nobody reads."""
    player, stop, sid = night_player(n_epochs)
    out = folder / "status-pipe.tsv"
    cmd = common.sleepstream("live", "--source-id", sid, "--out", out, "--no-outlets", "--status-json", "--epochs",
                             n_epochs, "--timeout", "60")
    err_path = folder / "status-pipe.stderr"
    r, w = os.pipe()
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=common.REPO, stdout=w, stderr=open(err_path, "w"))
        os.close(w)
        try:
            proc.wait(60 + n_epochs / 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        took = time.monotonic() - t0
        os.set_blocking(r, False)
        held = b""
        try:
            while chunk := os.read(r, 1 << 16):
                held += chunk
        except BlockingIOError:
            pass
    finally:
        os.close(r)
        stop.set()
        player.join(10)
    err = err_path.read_text()
    return {"epochs_expected": n_epochs, "epochs_on_disk": distinct_rows(out)[0], "rc": proc.returncode,
            "took_s": round(took, 1), "bytes_in_pipe": len(held), "lines_in_pipe": held.count(b"\n"),
            "command": common.shell(cmd) + "  (stdout: a pipe nobody reads)",
            "loss": loss_entry("--status-json into an unread pipe", summary_epochs(err), out, "summary on stderr"),
            "stderr_tail": err[-600:]}


def not_recording(folder: Path, n_epochs: int = 36, limit_bytes: int = 1400) -> dict:
    """``live --gate --status-json --out`` under a file-size limit, lifted later (prlimit)."""
    from replay.player import Player, load_source

    src = load_source(sleep_stretch_file(folder))
    name, sid = common.unique("norec")
    player = Player(src, name=name, source_id=sid, speed=120.0, loop=True)
    stop_player = threading.Event()
    player.start(stop_player)
    out = folder / "not-recording.tsv"
    live_args = ["live", "--source-id", sid, "--out", str(out), "--no-outlets", "--status-json", "--gate",
                 GATE_RULE, "--outlet-name", name + "-stim", "--epochs", str(n_epochs), "--timeout", "60"]
    err_path = folder / "not-recording.stderr"
    proc = subprocess.Popen([sys.executable, "-c", FSIZE_WRAPPER, str(limit_bytes), *live_args], cwd=common.REPO,
                            stdout=subprocess.PIPE, stderr=open(err_path, "w"), text=True)
    lines = Lines(proc)
    lifted_at = None
    try:
        lines.wait(lambda d: d.get("event") == "status" and d.get("recording") is False
                   and d.get("rows_pending", 0) >= 3, 120, "a status line saying NOT RECORDING with 3 rows kept")
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        lifted_at = len(lines.got)
        lines.wait(lambda d: d.get("event") == "end", 120, "the end of the session")
        proc.wait(30)
    finally:
        end(proc)
        stop_player.set()
        player.join(10)
    got = [d for d in lines.got if "seq" in d]
    window_open, bad, checked = False, [], 0
    open_when_failed, closed_not_recording, first_bad = None, False, None
    for d in got:
        ev = d["event"]
        if ev == "gate":
            window_open = d["kind"] == "open"
            if d["kind"] == "close" and d["reason"] == "not recording":
                closed_not_recording = True
        elif ev in ("status", "epoch") and "recording" in d:
            checked += 1
            if first_bad is None and d["recording"] is False and ev == "epoch":
                first_bad = d["epoch"]
            if d["recording"] is False and window_open:
                bad.append({k: d[k] for k in ("event", "seq", "epoch") if k in d})
    # was a window open just before the first epoch that could not be written?
    state = False
    for d in got:
        if d["event"] == "epoch" and first_bad is not None and d["epoch"] >= first_bad:
            break
        if d["event"] == "gate" and not (first_bad is not None and d.get("epoch") is not None
                                         and d["epoch"] >= first_bad):
            state = d["kind"] == "open"
    open_when_failed = state if first_bad is not None else None
    statuses = [d for d in got if d["event"] == "status"]
    err = err_path.read_text()
    seqs = [d["seq"] for d in got]
    return {"windows_open_while_not_recording": len(bad), "lines_checked": checked, "violations": bad[:20],
            "not_recording_lines": sum(1 for d in got if d.get("recording") is False),
            "first_epoch_not_recorded": first_bad, "window_open_when_the_disk_failed": open_when_failed,
            "closed_with_reason_not_recording": closed_not_recording,
            "windows_opened": sum(1 for d in got if d["event"] == "gate" and d["kind"] == "open"),
            "recording_again": "RECORDING again" in err, "lines_lost_by_reader": (seqs[-1] + 1 - len(seqs)) if seqs else None,
            "last_status": {k: statuses[-1].get(k) for k in ("recording", "rows_written", "rows_pending", "rows_lost")}
            if statuses else None,
            "limit_lifted_after_line": lifted_at, "rc": proc.returncode,
            "command": f"python -c '<RLIMIT_FSIZE {limit_bytes} B, SIGXFSZ ignored>' "
                       + common.shell(common.sleepstream(*live_args)) + "; limit lifted with prlimit",
            "loss": loss_entry("not recording (file-size limit, lifted)", summary_epochs(err), out,
                               "summary on stderr"),
            "stderr_tail": err[-600:]}


def bed_of(pid: int) -> str | None:
    """The bed (``--outlet-name``) of a ward worker process, None for any other process."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    return argv[argv.index("--outlet-name") + 1] if "--outlet-name" in argv[:-1] else None


def ward_children(ward_pid: int) -> dict[str, int]:
    """The ward's live workers, by bed (their --outlet-name)."""
    out: dict[str, int] = {}
    try:
        tasks = list(Path(f"/proc/{ward_pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in pids:
            bed = bed_of(int(pid))
            if bed is not None:
                out[bed] = int(pid)
    return out


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


WARD_SUMMARY_RE = re.compile(r"ward: (\d+) beds, (\d+) epochs, (\d+) worker restarts")


def hung_worker(hang_s: float, folder: Path) -> dict:
    """``sleepstream ward --hang-timeout hang_s``: SIGSTOP of its one worker, until its restart."""
    from replay.player import Player, ReplaySource, load_source

    x = load_source(common.simulated_night_file(8.0)).data_uv[: 40 * int(30 * FS)]
    tag = common.unique("ward")[0]
    stop = threading.Event()
    player = Player(ReplaySource.from_arrays(x, FS, ["Fpz-Cz"]), name=f"{tag}-A", source_id=f"{tag}:A", speed=30.0,
                    loop=True)
    player.start(stop)
    out = folder / f"ward-hang-{hang_s:g}"
    cmd = common.sleepstream("ward", "--name", f"{tag}-*", "--out", out, "--no-display", "--no-outlets", "--find-timeout",
                             "60", "--hang-timeout", f"{hang_s:g}")
    ward = subprocess.Popen(cmd, cwd=common.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(ward)
    err_lines: list[str] = []
    threading.Thread(target=lambda: err_lines.extend(ward.stderr), daemon=True).start()
    restart_s = killed_s = None
    stopped = bed = None
    try:
        lines.wait(lambda d: " epoch " in d["event"], 120, "the bed's first epoch")
        (bed, pid), = ward_children(ward.pid).items()
        tsv = out / f"{bed}.tsv"
        wait(lambda: distinct_rows(tsv)[0] >= 3, 60, "the bed's first 3 epochs")
        rows0 = distinct_rows(tsv)[0]
        os.kill(pid, signal.SIGSTOP)            # alive, silent: a hang
        stopped = pid
        t0 = time.monotonic()
        wait(lambda: not alive(pid) or ward_children(ward.pid).get(bed, pid) != pid, hang_s + 60,
             "the hung worker to be killed")
        killed_s = time.monotonic() - t0
        wait(lambda: ward_children(ward.pid).get(bed, pid) not in (pid, None), hang_s + 60,
             "the hung worker's restart", poll_s=0.01)
        restart_s = time.monotonic() - t0
        wait(lambda: distinct_rows(tsv)[0] >= rows0 + 3, 90, "the restarted worker's epochs")
    finally:
        if ward.poll() is None:
            ward.send_signal(signal.SIGTERM)
        try:
            ward.wait(60)
        except subprocess.TimeoutExpired:
            ward.kill()
            ward.wait()
        stop.set()
        player.join(10)
        if stopped is not None and alive(stopped) and bed_of(stopped) == bed:
            os.kill(stopped, signal.SIGKILL)    # the ward did not: never leave our stopped worker behind
    time.sleep(0.2)
    err = "".join(err_lines)
    m = WARD_SUMMARY_RE.findall(err)
    hung_lines = [d["event"] for d in lines.got if "worker hung" in d["event"]]
    return {"hang_timeout_s": hang_s, "restart_s": round(restart_s, 2), "killed_s": round(killed_s, 2),
            "hung_lines": hung_lines[:3], "command": common.shell(cmd), "rc": ward.returncode,
            "summary": next((ln for ln in err.splitlines() if ln.startswith("ward: ")), None),
            "loss": loss_entry(f"ward, worker hung (--hang-timeout {hang_s:g})",
                               int(m[-1][1]) if m else None, tsv, "the ward's summary")}


# --------------------------------------------------------------------------- the benchmark

def run(args: argparse.Namespace) -> dict:
    session = common.configure_lsl()
    command = common.this_command(MODULE, getattr(args, "argv", None))
    folder = common.scratch_dir("bench-faults-")
    load0 = os.getloadavg()[0]
    figures: list[common.Figure] = []
    losses: list[dict] = []
    body: dict = {}

    common.progress(f"faults: SIGSTOP of live --gate with a window open, {args.repeats} times")
    stop = scorer_stop(args.repeats, folder)
    losses.append(stop["loss"])
    figures += lapse_figures("gate_close_after_scorer_stop_s", "SIGSTOP of `live --gate` with a window open",
                             stop["trials"], stop["aside"], command, "",
                             {"scorer_command": stop["command"]}, stop["error"])

    if args.no_netns:
        drop = {"skipped": "--no-netns"}
    else:
        common.progress(f"faults: the listeners' network drops (veth link down), {args.repeats} times")
        drop = network_drop(args.repeats, folder, session)
    if "skipped" in drop:
        figures.append(common.Figure("gate_close_after_network_drop_s", None, "s", f"< {LEASE_TARGET_S:g} s", None, command,
                                     f"not measured: {drop['skipped']}", drop))
    else:
        losses.append(drop["loss"])
        during = [t.get("scorer_epochs_during_drop") for t in drop["trials"]]
        figures += lapse_figures("gate_close_after_network_drop_s",
                                 "the listeners' network dropped (`ip link set` veth down; scorer and listeners in "
                                 "two network namespaces of their own)", drop["trials"], drop["aside"], command,
                                 f"; the scorer scored {min(during) if during else 0}-{max(during) if during else 0} "
                                 "epochs meanwhile", {"scorer_command": drop["command"], "replay": drop["replay"]},
                                 drop["error"])

    common.progress(f"faults: live with its screen on a pty nobody reads, {args.epochs} epochs at --speed max")
    term = terminal_stalled(args.epochs, folder)
    losses.append(term["loss"])
    common.progress(f"faults: live --status-json into a pipe nobody reads, {args.epochs} epochs at --speed max")
    pipe = status_pipe_unread(args.epochs, folder)
    losses.append(pipe["loss"])
    figures.append(common.Figure("epochs_scored_while_terminal_stalled", float(term["epochs_on_disk_while_stalled"]), "epochs",
                                 f"= {args.epochs} (every epoch sent)",
                                 term["epochs_on_disk_while_stalled"] == args.epochs and term["pty_stopped_taking_output"],
                                 command,
                                 f"TSV rows of `live --out` with stdout and stderr on a pty nobody reads, {args.epochs} "
                                 f"epochs replayed at --speed max; the pty "
                                 + ("stopped taking output" + (f" at {term['rows_when_pty_filled']} rows"
                                                               if term["rows_when_pty_filled"] is not None else "")
                                    if term["pty_stopped_taking_output"] else "NEVER filled (no stall was tested)"),
                                 term))
    figures.append(common.Figure("epochs_scored_while_status_pipe_unread", float(pipe["epochs_on_disk"]), "epochs",
                                 f"= {args.epochs} (every epoch sent)", pipe["epochs_on_disk"] == args.epochs and pipe["rc"] == 0,
                                 command,
                                 f"TSV rows of `live --status-json --epochs {args.epochs} --out` into a pipe nobody reads "
                                 f"(it holds {pipe['lines_in_pipe']} lines, {pipe['bytes_in_pipe'] // 1024} KiB); exit "
                                 f"{pipe['rc']} after {pipe['took_s']:g} s", pipe))

    common.progress("faults: live --gate --status-json --out under a file-size limit, lifted later")
    norec = not_recording(folder)
    losses.append(norec["loss"])
    closed_ok = norec["closed_with_reason_not_recording"] or norec["window_open_when_the_disk_failed"] is False
    figures.append(common.Figure("windows_open_while_not_recording", float(norec["windows_open_while_not_recording"]),
                                 "lines", "0", norec["windows_open_while_not_recording"] == 0 and closed_ok
                                 and norec["not_recording_lines"] > 0, command,
                                 f"of {norec['lines_checked']} status/epoch lines ({norec['not_recording_lines']} with "
                                 f"recording false); the window open when the disk failed (epoch "
                                 f"{norec['first_epoch_not_recorded']}) "
                                 + ("closed with reason `not recording`" if norec["closed_with_reason_not_recording"]
                                    else "was not open" if norec["window_open_when_the_disk_failed"] is False
                                    else "did NOT close with reason `not recording`")
                                 + f"; RECORDING again after prlimit: {norec['recording_again']}", norec))

    hangs = []
    for hang_s in [float(v) for v in args.hang_timeouts.split(",") if v.strip()]:
        common.progress(f"faults: ward --hang-timeout {hang_s:g}, its worker SIGSTOPped")
        h = hung_worker(hang_s, folder)
        hangs.append(h)
        losses.append(h["loss"])
    first = hangs[0]
    others = "; ".join(f"--hang-timeout {h['hang_timeout_s']:g}: restarted after {h['restart_s']:.1f} s"
                       for h in hangs[1:])
    figures.append(common.Figure("hung_worker_restart_s", first["restart_s"], "s",
                                 f"<= --hang-timeout + {HANG_SLACK_S:g} s = {first['hang_timeout_s'] + HANG_SLACK_S:g} s",
                                 all(h["restart_s"] <= h["hang_timeout_s"] + HANG_SLACK_S for h in hangs), command,
                                 f"SIGSTOP of a `ward --hang-timeout {first['hang_timeout_s']:g}` worker until the ward runs a "
                                 f"new one (killed after {first['killed_s']:.1f} s)" + (f"; {others}" if others else ""),
                                 {"runs": hangs}))

    lost = [e["lost"] for e in losses]
    known = [x for x in lost if x is not None]
    total = sum(known)
    figures.append(common.Figure("rows_lost", float(total), "rows", "0", total == 0 and len(known) == len(lost), command,
                                 f"epochs scored minus epochs on disk over {len(losses)} scenarios that write a TSV"
                                 + (f"; {len(lost) - len(known)} without a scored count" if len(known) < len(lost) else "")
                                 + (f"; extra rows (on disk, not in the summary): {sum(e['extra_rows'] or 0 for e in losses)}"
                                    if any(e["extra_rows"] for e in losses) else ""),
                                 {"scenarios": losses}))

    if args.no_bad_streams:
        bad = None
    else:
        from .bad_streams import RSS_TARGET_MB, measure

        common.progress("faults: bad streams (benchmarks.bad_streams.measure)")
        bad = measure(epochs=args.wide_epochs)
        missed = [c["stream"] for c in bad["cases"] if not c["refused"]]
        figures.append(common.Figure("bad_streams_refused", float(bad["bad_streams_refused"]), "streams",
                                     f"= bad_streams_tried ({bad['bad_streams_tried']})",
                                     bad["bad_streams_refused"] == bad["bad_streams_tried"], command,
                                     f"{bad['bad_streams_refused']}/{bad['bad_streams_tried']} refused (exit 2, one line)"
                                     + (f"; not refused: {', '.join(missed)}" if missed else ""),
                                     {"cases": bad["cases"]}))
        figures.append(common.Figure("rss_mb_100khz_stream", bad["rss_mb_100khz_stream"], "MB",
                                     f"< {RSS_TARGET_MB:g} MB, or refused",
                                     bad["refused_100khz"] or bad["rss_mb_100khz_stream"] < RSS_TARGET_MB, command,
                                     ("refused before the model loads" if bad["refused_100khz"] else "NOT refused")
                                     + f"; an accepted 20 kHz x 64-channel stream: {bad['rss_mb_20khz_64ch_stream']:.0f} MB "
                                     f"peak, {bad['epochs_scored_20khz_64ch']}/{args.wide_epochs} epochs",
                                     {k: v for k, v in bad.items() if k != "cases"}))

    body.update({f.name: f.value for f in figures})
    body["epochs_expected_while_stalled"] = args.epochs
    if bad is not None:
        body["bad_streams_tried"] = bad["bad_streams_tried"]
    body.update({"figures": figures, "load_avg_1_at_start": round(load0, 2),
                 "load_avg_1_at_end": round(os.getloadavg()[0], 2)})
    return body


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=5, help="trials per gate fault (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=960,
                   help="epochs replayed at --speed max into the stalled terminal and the unread pipe "
                        "(default: %(default)s, an 8-h night; the pipe holds ~190 epochs of lines)")
    p.add_argument("--hang-timeouts", default="5,20", metavar="S,S",
                   help="ward --hang-timeout values to run, each with its worker SIGSTOPped (default: %(default)s)")
    p.add_argument("--no-netns", action="store_true", help="leave out the network drop (namespaces need root)")
    p.add_argument("--no-bad-streams", action="store_true", help="leave out benchmarks.bad_streams.measure()")
    p.add_argument("--wide-epochs", type=int, default=1,
                   help="epochs of the accepted 20 kHz x 64-channel stream, at real time (default: %(default)s)")


if __name__ == "__main__":
    common.script_main("faults", __doc__, add_arguments, run)
