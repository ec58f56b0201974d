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
                   help="channel label in the stream description (default: %(default)s; case, spaces, an 'EEG' "
                        "prefix and a '-Ref' suffix are ignored), or a derivation of referential channels computed "
                        "sample by sample: F4-M1, C4-(M1+M2)/2 (a channel with that exact label wins)")
    c.add_argument("--channel-index", type=int, metavar="I", help="pick the channel by 0-based index instead")
    c.add_argument("--units", help="override the channel's declared unit: uV, mV or V")
    c.add_argument("--normalized", action="store_true",
                   help="the signal is per-epoch normalised (each 30-s epoch z-scored): score it with the scale-free "
                        "model and level-free quality checks (a sleepstream replay of such a file says so itself)")
    o = p.add_argument_group("outputs")
    o.add_argument("--out", metavar="FILE", help="hypnogram TSV, one row per epoch, fsync'ed; appended to "
                                                 "when it exists (a new session), never truncated; locked while "
                                                 "scoring (a second scorer on it is refused); rows that cannot be "
                                                 "written are kept and written when the disk comes back (NOT "
                                                 "RECORDING meanwhile)")
    o.add_argument("--outlet-name", default="sleepstream",
                   help="LSL outlets <name>-stage and <name>-probabilities (default: %(default)s)")
    o.add_argument("--no-outlets", action="store_true", help="do not publish stages on LSL")
    o.add_argument("--no-display", action="store_true", help="one log line per epoch instead of the live screen")
    o.add_argument("--status-json", action="store_true",
                   help="instead of the screen or the log: one JSON line per epoch, truth label, status "
                        "tick and (with --gate) window event on stdout (for a supervisor; sleepstream ward "
                        "runs its workers this way); numbered by 'seq': a reader that does not keep up loses "
                        "lines, never holds up scoring")
    o.add_argument("--gate", nargs="?", const="", metavar="RULES",
                   help="stimulation windows on the LSL Markers stream <outlet-name>-gate (open/close and "
                        "why) with an arousal guard; RULES: a .toml file or key=value pairs, e.g. "
                        "stages=N3,min_probability=0.9,epochs=3,max_open_s=600 (no value: N2 or N3 "
                        "with probability >= 0.8 for 2 epochs, at most 1800 s open); see README")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help="a shipped model's name or a weights folder (default: %s, the default "
                        "model named in weights/__init__.py)" % DEFAULT_MODEL)
    p.add_argument("--buffer-s", type=int, default=360, metavar="S",
                   help="inlet buffer in seconds of signal (default: %(default)s; fewer where liblsl's queue "
                        "would hold more than 256 MiB: a fast or wide stream); a sleepstream replay "
                        "faster than real time says how fast and long it is, and the buffer grows to match")
    p.add_argument("--epochs", type=int, metavar="N", help="stop after N epochs (default: run until Ctrl-C)")
    from sleepstream.lsl_config import add_lsl_arguments

    add_lsl_arguments(p)


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
    """Route the per-epoch lines of the log sink to stdout, plainly, without ever blocking
    the loop (a bounded, drop-counting handler: a stalled terminal loses lines, not epochs)."""
    from scorer.log_sink import EPOCH_LOGGER

    route_logger_to_stdout(EPOCH_LOGGER, bounded=True)


def route_logger_to_stdout(name: str, bounded: bool = False) -> None:
    """Lines of logger ``name`` go to stdout with a time stamp, and nowhere else;
    ``bounded``: through a :class:`scorer.bounded_output.BoundedLogHandler` (never blocks)."""
    lg = logging.getLogger(name)
    if not any(getattr(h, "_sleepstream", False) for h in lg.handlers):
        if bounded:
            from scorer.bounded_output import BoundedLogHandler

            h: logging.Handler = BoundedLogHandler(sys.stdout)
        else:
            h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        h._sleepstream = True  # type: ignore[attr-defined]
        lg.addHandler(h)
    lg.setLevel(logging.INFO)
    lg.propagate = False


def make_view_sink(no_display: bool, title: str, recording=None):
    """The Rich display (scorer.display.DisplaySink), or the log sink with --no-display
    or when the display module is not available. ``recording``: the hypnogram file's
    ``recording_state`` (the screen shows NOT RECORDING)."""
    if not no_display:
        try:
            from scorer.display import DisplaySink
        except ImportError:
            logging.getLogger(__name__).warning("the live display is not available; logging epochs instead")
        else:
            return DisplaySink(title=title, recording=recording)
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


def ignore_file_size_signal() -> None:
    """A file-size limit (``ulimit -f``) makes a write fail with EFBIG instead of killing the
    scorer with SIGXFSZ: the hypnogram sink turns it into NOT RECORDING and scoring goes on."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def print_bounded(console, write, timeout_s: float = 2.0) -> None:
    """Print what ``write(c)`` prints on ``console`` without hanging on a dead reader:
    rendered to text on a console of its own (same width and colours; the real one would
    write and flush its file), then written by a thread that is given ``timeout_s``."""
    import io

    from rich.console import Console

    from scorer.bounded_output import BoundedWriter

    text = Console(file=io.StringIO(), width=console.width, color_system=console.color_system,
                   force_terminal=console.is_terminal, legacy_windows=False)
    write(text)
    out = BoundedWriter(console.file, max_queued=1, name="summary")
    out.offer(text.file.getvalue())
    out.close(timeout_s)


def output_notes(sinks: list, log_handlers: list) -> list[str]:
    """What the outputs lost, for the summary: hypnogram rows not written, frames not drawn,
    status and log lines dropped because their reader did not keep up."""
    from scorer.hypnogram_file import HypnogramFile

    notes = []
    for s in sinks:
        if isinstance(s, HypnogramFile):
            st = s.recording_state()
            notes.append(f"hypnogram rows written this session: {st.rows_written}"
                         + (f", {st.rows_lost} LOST (the file could not be written)" if st.rows_lost else ""))
    dropped = {"screen frames not drawn": sum(getattr(s, "frames_dropped", 0) for s in sinks),
               "status lines dropped": sum(getattr(s, "dropped_lines", 0) for s in sinks),
               "log lines dropped": sum(h.dropped for h in log_handlers)}
    epoch_log = [h for h in logging.getLogger("sleepstream.epochs").handlers if hasattr(h, "dropped")]
    dropped["log lines dropped"] += sum(h.dropped for h in epoch_log)
    lost = [f"{n} {what}" for what, n in dropped.items() if n]
    if lost:
        notes.append("the terminal or reader did not keep up: " + ", ".join(lost) + " (no epoch was held up)")
    return notes


def print_summary(console, summary, out: str | None, notes: list[str] | tuple[str, ...] = ()) -> None:
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
    for note in notes:
        console.print(note)


def run(args: argparse.Namespace) -> int:
    from sleepstream.lsl_config import configure_lsl

    lsl = configure_lsl(network=args.network, session_id=args.session_id)

    from rich.console import Console

    from scorer.bounded_output import logging_without_blocking
    from scorer.hypnogram_file import HypnogramFile, check_writable
    from scorer.lsl_outlets import LslOutletSink
    from streamer.errors import StreamError, StreamNotFoundError
    from streamer.resolve import StreamQuery, resolve
    from streamer.stream import EEGStream, check_stream_info, unit_scale_to_uv
    from streamer.truth import TruthStream

    if args.channel_index is not None and args.channel_index < 0:
        raise StreamError(f"--channel-index must be 0 or more, got {args.channel_index}")
    if args.units is not None and unit_scale_to_uv(args.units) is None:
        raise StreamError(f"--units {args.units!r}: use uV, mV or V")
    if args.epochs is not None and args.epochs < 1:
        raise StreamError(f"--epochs must be at least 1, got {args.epochs}")
    if args.out:
        check_writable(args.out)     # also: another scorer holds it (before anything starts)
    gate_rule = None
    if getattr(args, "gate", None) is not None:
        from scorer.gate.rules import parse_rule

        gate_rule = parse_rule(args.gate)
    ignore_file_size_signal()
    query = StreamQuery.from_options(args.stream_name, args.stream_type, args.source_id)
    try:
        found = resolve(query, args.timeout)
    except StreamNotFoundError as exc:
        raise StreamNotFoundError(f"{exc}; {lsl.search_hint()}") from None
    check_stream_info(found.info)             # a stream out of bounds: refused before the model loads
    from scorer.live import LiveScorer, release_session  # the model only once there is something to score
    from sleepnet.normalised import STREAM_KIND, describe_input, is_level_free, model_for_input, quality_thresholds
    from sleepnet.weights import load_model

    if args.weights is not None:
        load_model(args.weights)   # a bad --weights fails before the stream is opened
    info = found.info
    stream = EEGStream(info, channel=args.channel, channel_index=args.channel_index, units=args.units,
                       max_buflen_s=args.buffer_s)
    truth = TruthStream.find(info.name(), info.source_id(), found.visible)
    sinks: list = []
    scorer = None
    console = Console(stderr=True)
    # While the night runs, no log line, screen frame or status line may block the loop.
    with logging_without_blocking() as log_handlers:
        try:
            # Samples flow from run() on: whatever arrives meanwhile would wait in liblsl's queue.
            desc = stream.connect(timeout_s=max(2.0, min(args.timeout, 10.0)), subscribe=False)
            normalised_by = ("--normalized" if args.normalized
                             else "stream" if desc.normalisation == STREAM_KIND else None)
            model = load_model(model_for_input(args.weights, normalised_by is not None))
            use_one_torch_thread()
            print_bounded(console, lambda c: c.print(f"sleepstream live: model {model.summary}", highlight=False,
                                                     soft_wrap=True))
            if normalised_by:
                line = describe_input(normalised_by, model.model_id, is_level_free(model))
                print_bounded(console, lambda c: c.print(line, highlight=False, soft_wrap=True))
            # The durable record first: the gate then knows whether an epoch's row is on disk
            # before it decides on that epoch (NOT RECORDING never opens a window).
            hyp = HypnogramFile(args.out, desc.name, model.model_id) if args.out else None
            if hyp is not None:
                sinks.append(hyp)
            recording = hyp.recording_state if hyp is not None else None
            gate = None
            if gate_rule is not None:
                from scorer.gate.sink import GateSink

                gate = GateSink(desc.sfreq_hz, gate_rule, args.outlet_name, source_stream=desc.name,
                                recording=(lambda: hyp.recording) if hyp is not None else None)
                sinks.append(gate)
            if not args.no_outlets:
                sinks.append(LslOutletSink(args.outlet_name, model.model_id, source_stream=desc.name,
                                           source_channel=desc.channel_label))
            if args.status_json:
                from scorer.json_lines import JsonLinesSink

                # epochs numbered as in the file
                json_sink = JsonLinesSink(sys.stdout, hyp.first_epoch if hyp is not None else 0,
                                          recording=recording)
                if gate is not None:                                 # and the gate's events (the ward's screen)
                    json_sink.follow_gate(gate)
                sinks.append(json_sink)
            else:
                sinks.append(make_view_sink(args.no_display, f"sleepstream live: {desc.name} / {desc.channel_label}",
                                            recording))
            scorer = LiveScorer(stream, model, sinks, truth, state_path=state_path_for(args.out),
                                thresholds=quality_thresholds(normalised_by is not None))
            with stop_on_signals() as stop:
                summary = scorer.run(stop=stop, max_epochs=args.epochs)
        finally:
            release_session(scorer, sinks, stream, truth)
        notes = output_notes(sinks, log_handlers)
        print_bounded(console, lambda c: print_summary(c, summary, args.out, notes))
    return 0
