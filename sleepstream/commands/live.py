"""`sleepstream live`: score a live LSL EEG stream epoch by epoch."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from weights import DEFAULT_MODEL

HELP = "score a live LSL EEG stream every 30 s: on screen, on LSL stage outlets and in a hypnogram file"
EXAMPLE = "sleepstream live --stream-name sleepstream-replay --out night.tsv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which stream (none given: the first stream of type EEG)")
    g.add_argument("--stream-name", help="LSL stream name")
    g.add_argument("--stream-type", help="LSL stream type (e.g. EEG)")
    g.add_argument("--source-id", help="LSL source_id (most specific; survives outlet restarts)")
    g.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="give up finding the stream after S seconds (default: %(default)s)")
    c = p.add_argument_group("which channel")
    c.add_argument("--channel", default="Fpz-Cz",
                   help="channel label in the stream description (default: %(default)s; "
                        "case, spaces and an 'EEG' prefix are ignored)")
    c.add_argument("--channel-index", type=int, metavar="I", help="pick the channel by 0-based index instead")
    c.add_argument("--units", help="override the channel's declared unit: uV, mV or V")
    o = p.add_argument_group("outputs")
    o.add_argument("--out", metavar="FILE", help="hypnogram TSV, one row per epoch, fsync'ed; appended to "
                                                 "when it exists (a new session), never truncated")
    o.add_argument("--outlet-name", default="sleepstream",
                   help="LSL outlets <name>-stage and <name>-probabilities (default: %(default)s)")
    o.add_argument("--no-outlets", action="store_true", help="do not publish stages on LSL")
    o.add_argument("--no-display", action="store_true", help="one log line per epoch instead of the live screen")
    o.add_argument("--status-json", action="store_true",
                   help="instead of the screen or the log: one JSON line per epoch, truth label, status "
                        "tick and (with --gate) window event on stdout (for a supervisor; sleepstream ward "
                        "runs its workers this way)")
    o.add_argument("--gate", nargs="?", const="", metavar="RULES",
                   help="stimulation windows on the LSL Markers stream <outlet-name>-gate (open/close and "
                        "why) with an arousal guard; RULES: a .toml file or key=value pairs, e.g. "
                        "stages=N3,min_probability=0.9,epochs=3,max_open_s=600 (no value: N2 or N3 "
                        "with probability >= 0.8 for 2 epochs, at most 1800 s open); see README")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help="a shipped model's name or a weights folder (default: %s, the default "
                        "model named in weights/__init__.py)" % DEFAULT_MODEL)
    add_session_start_argument(p)
    p.add_argument("--buffer-s", type=int, default=360, metavar="S",
                   help="inlet buffer in seconds of signal (default: %(default)s); a sleepstream replay "
                        "faster than real time says how fast and long it is, and the buffer grows to match")
    p.add_argument("--epochs", type=int, metavar="N", help="stop after N epochs (default: run until Ctrl-C)")
    from sleepstream.lsl_config import add_lsl_arguments

    add_lsl_arguments(p)


def add_session_start_argument(p: argparse.ArgumentParser, live: bool = True) -> None:
    """``--session-start lights-off|unknown`` (live, score)."""
    where = ("; a restart on the same --out carries on with the session start of its state file"
             if live else "")
    p.add_argument("--session-start", choices=("lights-off", "unknown"),
                   help="did the recording start at lights-off? 'lights-off': the time since the start counts "
                        "as the night's clock (what the model learned of when REM and deep sleep come); "
                        "'unknown': no clock, for a session started mid-night or a nap (default: the model's "
                        "own: unknown for the default model" + where + ")")


def session_start_line(session_start: str | None) -> str:
    """What the session start means, in one line for the console."""
    if session_start is None:
        return "session start: not used by this model (it keeps no night clock)"
    if session_start == "lights-off":
        return "session start: lights-off (the time since this session started is the night's clock)"
    return ("session start: unknown (no night clock; pass --session-start lights-off when the recording "
            "started at lights-off)")


def use_one_torch_thread() -> None:
    """Score with one torch thread, when the model loaded is one that uses torch (the
    CNN–LSTM; the default feature stager never imports it). Live scoring runs the model
    on one epoch at a time: intra-op threads gain nothing there and, on a shared CPU,
    cost a lot (measured with benchmarks/live_latency.py on 2 busy cores: median latency
    31 ms and p95 256 ms with 2 threads, 2.3 ms and 6.4 ms with 1)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def setup_epoch_log() -> None:
    """Route the per-epoch lines of the log sink to stdout, plainly."""
    from scorer.log_sink import EPOCH_LOGGER

    route_logger_to_stdout(EPOCH_LOGGER)


def route_logger_to_stdout(name: str) -> None:
    """Lines of logger ``name`` go to stdout with a time stamp, and nowhere else."""
    lg = logging.getLogger(name)
    if not any(getattr(h, "_sleepstream", False) for h in lg.handlers):
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        h._sleepstream = True  # type: ignore[attr-defined]
        lg.addHandler(h)
    lg.setLevel(logging.INFO)
    lg.propagate = False


def make_view_sink(no_display: bool, title: str):
    """The Rich display (scorer.display.DisplaySink), or the log sink with --no-display
    or when the display module is not available."""
    if not no_display:
        try:
            from scorer.display import DisplaySink
        except ImportError:
            logging.getLogger(__name__).warning("the live display is not available; logging epochs instead")
        else:
            return DisplaySink(title=title)
    from scorer.log_sink import LogSink

    setup_epoch_log()
    return LogSink()


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM, so loops end cleanly; handlers restored after."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set():  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop.set()

    for s in old:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def state_path_for(out: str | None):
    """The night-state file beside ``--out`` (``night.tsv`` -> ``night.tsv.state.json``),
    used only when ``out`` already holds scored epochs of an earlier session."""
    if not out:
        return None
    from pathlib import Path

    from scorer.hypnogram_file import inspect_file

    p = Path(out)
    state = p.with_name(p.name + ".state.json")
    if state.exists() and (not p.exists() or inspect_file(p).rows == 0):
        state.unlink()          # a state without its hypnogram: a night that was deleted
    return state


def print_summary(console, summary, out: str | None) -> None:
    from sleepstream.console import agreement_tables

    lat = summary.latency_percentiles()
    lat_text = (f", latency median {lat['median_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms" if lat else "")
    console.print(f"{summary.epochs} epochs ({summary.scored} scored, {summary.unscored} unscored), "
                  f"{summary.gaps} gaps, signal lost {summary.stalls}x{lat_text}")
    a = summary.agreement()
    if a is not None and a.n_epochs:
        for t in agreement_tables(a, title="Agreement with the truth stream"):
            console.print(t)
    if out:
        console.print(f"hypnogram: {out}")


def run(args: argparse.Namespace) -> int:
    from sleepstream.lsl_config import configure_lsl

    lsl = configure_lsl(network=args.network, session_id=args.session_id)

    from rich.console import Console

    from scorer.hypnogram_file import HypnogramFile, check_writable
    from scorer.lsl_outlets import LslOutletSink
    from streamer.errors import StreamError, StreamNotFoundError
    from streamer.resolve import StreamQuery, resolve
    from streamer.stream import EEGStream, unit_scale_to_uv
    from streamer.truth import TruthStream

    if args.channel_index is not None and args.channel_index < 0:
        raise StreamError(f"--channel-index must be 0 or more, got {args.channel_index}")
    if args.units is not None and unit_scale_to_uv(args.units) is None:
        raise StreamError(f"--units {args.units!r}: use uV, mV or V")
    if args.epochs is not None and args.epochs < 1:
        raise StreamError(f"--epochs must be at least 1, got {args.epochs}")
    if args.out:
        check_writable(args.out)
    gate_rule = None
    if getattr(args, "gate", None) is not None:
        from scorer.gate.rules import parse_rule

        gate_rule = parse_rule(args.gate)
    query = StreamQuery.from_options(args.stream_name, args.stream_type, args.source_id)
    try:
        found = resolve(query, args.timeout)
    except StreamNotFoundError as exc:
        raise StreamNotFoundError(f"{exc}; {lsl.search_hint()}") from None
    from scorer.live import LiveScorer, release_session  # the model only once there is something to score
    from sleepnet.weights import load_model

    model = load_model(args.weights)
    use_one_torch_thread()
    info = found.info
    stream = EEGStream(info, channel=args.channel, channel_index=args.channel_index, units=args.units,
                       max_buflen_s=args.buffer_s)
    truth = TruthStream.find(info.name(), info.source_id(), found.visible)
    sinks: list = []
    scorer = None
    console = Console(stderr=True)
    try:
        # Samples flow from run() on: whatever arrives meanwhile would wait in liblsl's queue.
        desc = stream.connect(timeout_s=max(2.0, min(args.timeout, 10.0)), subscribe=False)
        console.print(f"sleepstream live: model {model.summary}", highlight=False, soft_wrap=True)
        if gate_rule is not None:  # first: its markers' latency counts from the epoch's record
            from scorer.gate.sink import GateSink

            sinks.append(GateSink(desc.sfreq_hz, gate_rule, args.outlet_name, source_stream=desc.name))
        if args.out:
            sinks.append(HypnogramFile(args.out, desc.name, model.model_id))
        if not args.no_outlets:
            sinks.append(LslOutletSink(args.outlet_name, model.model_id, source_stream=desc.name))
        if args.status_json:
            from scorer.json_lines import JsonLinesSink

            first = next((s.first_epoch for s in sinks if isinstance(s, HypnogramFile)), 0)
            json_sink = JsonLinesSink(sys.stdout, first)       # epochs numbered as in the file
            if gate_rule is not None:                            # and the gate's events (the ward's screen)
                json_sink.follow_gate(next(s for s in sinks if isinstance(s, GateSink)))
            sinks.append(json_sink)
        else:
            sinks.append(make_view_sink(args.no_display, f"sleepstream live: {desc.name} / {desc.channel_label}"))
        scorer = LiveScorer(stream, model, sinks, truth, state_path=state_path_for(args.out),
                            session_start=getattr(args, "session_start", None))
        console.print(session_start_line(scorer.session_start), highlight=False, soft_wrap=True)
        view = sinks[-1]
        if scorer.session_start is not None and hasattr(view, "state"):     # the live screen's header
            view.state.title += f" · start: {scorer.session_start}"
        with stop_on_signals() as stop:
            summary = scorer.run(stop=stop, max_epochs=args.epochs)
    finally:
        release_session(scorer, sinks, stream, truth)
    print_summary(console, summary, args.out)
    return 0
