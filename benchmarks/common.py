"""Shared pieces of the benchmarks: where results go, the machine they ran on, the
simulated nights they use, the `sleepstream` command as a subprocess, LSL on this
machine only, percentiles and the memory of a process.

Every benchmark module has ``run(args) -> dict`` (its figures, each with the command
that produced it) and runs alone through :func:`script_main` as ``python -m benchmarks.<name>``;
:mod:`benchmarks.run_all` runs them all and prints one table.
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DATA = RESULTS / "data"
SHARED = REPO.parent / "shared" / "data"
EXCERPT = SHARED / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
EXCERPT_HYPNOGRAM = SHARED / "sleep-edf" / "SC4001EC-Hypnogram.edf"
SLEEPSTREAM = (str(REPO / ".venv" / "bin" / "sleepstream") if (REPO / ".venv" / "bin" / "sleepstream").exists()
               else "sleepstream")
EPOCH_S = 30.0
LSL_DIR_PREFIX = "sleepstream-bench-lsl-"


@dataclass
class Figure:
    """One measured figure. target: the goal in words; passed: True/False, or None when
    there is no target. command: what produced it (copy-paste runnable from the repo root)."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    passed: bool | None = None
    command: str = ""
    note: str = ""
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def machine() -> dict:
    """What the figures were measured on."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in load],
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def this_command(module: str, argv: list[str] | None = None) -> str:
    """The command line that runs ``module`` with ``argv`` (for the 'command' of a figure)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python -m", module, *map(shlex.quote, args)]).strip()


def write_result(name: str, body: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(body, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, Figure):
        return o.as_dict()
    raise TypeError(type(o))


def configure_lsl() -> str:
    """LSL for this machine only, in a session of its own: a machine-only lsl_api.cfg
    with its own SessionID, named by LSLAPICFG before any LSL call, so this process and
    the `sleepstream` commands started from here (which use it as the user's
    configuration) see each other and nothing else. Returns the session id."""
    from sleepstream.lsl_config import CONFIG_ENV, session_of, write_machine_config

    cfg = os.environ.get(CONFIG_ENV, "")
    if LSL_DIR_PREFIX in cfg and Path(cfg).exists():   # already set by this run
        return session_of(Path(cfg).read_text())
    session = f"sleepstream-bench-{uuid.uuid4().hex[:10]}"
    folder = Path(tempfile.mkdtemp(prefix=LSL_DIR_PREFIX))
    atexit.register(shutil.rmtree, folder, True)
    os.environ[CONFIG_ENV] = str(write_machine_config(folder / "lsl_api.cfg", session))
    return session


def unique(tag: str) -> tuple[str, str]:
    """A stream name and source_id no other run uses."""
    h = uuid.uuid4().hex[:8]
    return f"bench-{tag}-{h}", f"bench-{tag}:{h}"


def percentiles(x, qs=(50, 99)) -> dict:
    a = np.asarray(list(x), dtype=float)
    if not len(a):
        return {f"p{q}": float("nan") for q in qs} | {"n": 0}
    return {**{f"p{q}": float(np.percentile(a, q)) for q in qs}, "max": float(a.max()), "n": int(len(a))}


def params_key() -> str:
    """A short hash of the simulator (code and parameters): cached nights and models
    follow the simulator they were made with."""
    h = hashlib.sha1()
    for p in (REPO / "sleepnet" / "simulate.py", REPO / "sleepnet" / "simulation_params.json",
              REPO / "sleepnet" / "hypnogram_model.py"):
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


def simulated_night_file(hours: float = 8.0, seed: int = 1, sfreq: float = 100.0) -> Path:
    """A simulated night in our continuous npz (with labels), made once per simulator version."""
    from sleepnet.io.recordings import write_continuous_npz
    from sleepnet.sim.night import simulate_night

    DATA.mkdir(parents=True, exist_ok=True)
    stem = f"night-{hours:g}h-seed{seed}-{sfreq:g}hz-"
    path = DATA / f"{stem}{params_key()}.npz"
    if not path.exists():
        for old in DATA.glob(f"{stem}*.npz"):   # made with another version of the simulator
            old.unlink()
        night = simulate_night(hours, seed, sfreq)
        tmp = path.with_name(path.stem + ".tmp.npz")
        write_continuous_npz(tmp, night.eeg_uv, night.sfreq, night.labels, night.channel)
        tmp.replace(path)
    return path


def scratch_dir(prefix: str) -> Path:
    """A fresh folder for a benchmark's files under ``results/scratch/`` (kept after a
    run on its own, for a look; ``run_all`` empties it)."""
    base = RESULTS / "scratch"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def sleepstream(*args: object) -> list[str]:
    return [SLEEPSTREAM, *map(str, args)]


def shell(cmd: list[str]) -> str:
    """A command line as a user types it (paths shortened to the repository root)."""
    out = []
    for c in cmd:
        c = str(c)
        if c == SLEEPSTREAM:
            c = "sleepstream"
        c = c.replace(str(REPO) + "/", "")
        out.append(shlex.quote(c))
    return " ".join(out)


def popen(cmd: list[str], **kw) -> subprocess.Popen:
    """Start a command with its stdout and stderr going to temporary files (a pipe
    nobody reads would fill up and block a scorer logging one line per epoch)."""
    out = tempfile.TemporaryFile(mode="w+")
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, text=True, **kw)
    proc._bench_files = (out, err)  # type: ignore[attr-defined]
    return proc


def outputs(proc: subprocess.Popen) -> tuple[str, str]:
    """What a process started with :func:`popen` wrote so far (stdout, stderr)."""
    texts = []
    for fh in proc._bench_files:  # type: ignore[attr-defined]
        fh.flush()
        fh.seek(0)
        texts.append(fh.read())
        fh.seek(0, 2)
    return texts[0], texts[1]


def stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> tuple[str, str]:
    """SIGTERM (the live command's clean stop), then SIGKILL if it lingers; returns
    its (stdout, stderr)."""
    if proc is None:
        return "", ""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return outputs(proc)


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll_s: float = 0.01,
               proc: subprocess.Popen | None = None) -> float:
    """Wait for ``cond``; returns the perf_counter time it became true."""
    t_end = time.perf_counter() + timeout
    while True:
        if cond():
            return time.perf_counter()
        if proc is not None and proc.poll() is not None:
            out, err = outputs(proc)
            raise RuntimeError(f"{what}: the process ended early (rc {proc.returncode}): {err.strip()[-800:]}")
        if time.perf_counter() > t_end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll_s)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB, from /proc/PID/status (NaN when gone)."""
    rss = hwm = float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return rss, hwm


def count_rows(path: Path) -> int:
    """Epoch rows of a live hypnogram file so far (whole lines, not comments)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    if not data:
        return 0
    lines = data.split(b"\n")[1:-1]   # the header, and a line still being written
    return sum(1 for ln in lines if ln and not ln.startswith(b"#"))


def progress(msg: str) -> None:
    """Benchmarks say what they are doing on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


WEIGHTS_HELP = "a shipped model's name or a weights folder (default: the default model)"


def add_repeats_argument(p: argparse.ArgumentParser, default: int, timed: str, counts: str = "medians count") -> None:
    """Add ``--repeats``, how many times a benchmark times what it measures, as every timing
    benchmark names it.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The benchmark's parser (its ``add_arguments``).
    default : int
        Runs when the option is not given.
    timed : str
        What one repeat runs, for the help text (``starts of `sleepstream live` timed``).
    counts : str
        Which runs make the figure: the median of them, or the fastest where the machine's
        other work would skew a median (``the fastest counts``).
    """
    p.add_argument("--repeats", type=int, default=default, help=f"{timed}; {counts} (default: %(default)s)")


def add_weights_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--weights``, the model a benchmark scores with, as every scoring benchmark names it.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The benchmark's parser (its ``add_arguments``).
    """
    p.add_argument("--weights", help=WEIGHTS_HELP)


def script_main(name: str, doc: str, add_arguments: Callable, run: Callable,
                argv: list[str] | None = None, value_format: str = ".2f") -> None:
    """The command line of one benchmark script (its ``if __name__ == "__main__"``): parse,
    run, add the machine, write ``benchmarks/results/<name>.json`` and print each figure.

    Parameters
    ----------
    name : str
        The result's name (``benchmarks/results/<name>.json``).
    doc : str
        The module's docstring; its first line is the ``--help`` description.
    add_arguments : callable
        ``add_arguments(parser)``: the benchmark's options.
    run : callable
        ``run(args) -> dict``: the benchmark; the dict has ``figures``.
    argv : list of str, optional
        The arguments (None: the command line's).
    value_format : str
        How each figure's value is printed (a format spec).
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    args.argv = argv
    body = run(args)
    body["machine"] = machine()
    path = write_result(name, body)
    for f in body["figures"]:
        value = "—" if f.value is None else f"{f.value:{value_format}}"   # None: not measured (the note says why)
        print(f"{f.name}: {value} {f.unit} ({f.note})")
    print(f"-> {path}")
