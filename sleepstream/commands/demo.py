"""`sleepstream demo`: replay a simulated night at high speed and score it live, in one command.

The replay runs in a thread of this process (:class:`replay.player.Player`); the scoring is a
:class:`scorer.session.LiveSession`, the same session ``sleepstream live`` runs."""
from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import command_doc
from weights import DEFAULT_MODEL

HELP = "replay a simulated night at high speed, score it live on screen, and summarise the agreement"
EXAMPLE = "sleepstream demo --speed max --no-display"

SHARED_EXCERPT = Path("../shared/data/sleep-edf/SC4001E0-PSG-first300s.edf")
SHARED_EXCERPT_HYPNOGRAM = Path("../shared/data/sleep-edf/SC4001EC-Hypnogram.edf")


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream demo``: ``--recording``, ``--hypnogram``, ``--channel``,
    ``--speed``, ``--out``, ``--no-display``, ``--weights`` and the LSL options.
    """
    from sleepstream.commands.replay import parse_speed

    p.add_argument("--recording", help="recording to replay (default: the demo night demo-night.npz in "
                                       "$SLEEPSTREAM_DATA_DIR or the user cache folder, simulated on first use)")
    p.add_argument("--hypnogram", help="true stages of --recording (default: labels inside the npz)")
    p.add_argument("--channel", default=DEFAULT_CHANNEL, help="EDF/BDF channel (default: %(default)s)")
    p.add_argument("--speed", type=parse_speed, default=480.0, metavar="N|max",
                   help="replay speed (default: 480, an 8-h night in a minute; max: as fast as the "
                        "live scorer takes it, a few seconds)")
    p.add_argument("--out", metavar="FILE",
                   help="hypnogram TSV (default: <recording>-live-<time>.tsv beside the recording)")
    p.add_argument("--no-display", action="store_true", help="one log line per epoch instead of the live screen")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help=f"a shipped model's name or a weights folder (default: {DEFAULT_MODEL}, the default "
                        "model named in weights/__init__.py)")
    from sleepstream.lsl_config import add_lsl_arguments

    add_lsl_arguments(p)


def demo_recording(console) -> tuple[Path, Path | None]:
    """The demo night (simulated on first use), or the real Sleep-EDF excerpt when the
    simulator is not available.

    Parameters
    ----------
    console : rich.console.Console
        Where to say that the night is being simulated, or that the excerpt is used.

    Returns
    -------
    tuple of (Path, Path or None)
        The recording, and its separate hypnogram (None for the demo night, whose npz
        holds its labels).

    Raises
    ------
    SleepstreamError
        The simulator is not available and the shared excerpt is absent.
    """
    try:
        from sleepnet.sim.night import ensure_demo_recording
    except ImportError:
        if SHARED_EXCERPT.exists():
            console.print(f"simulator not available; replaying the real excerpt {SHARED_EXCERPT}")
            return SHARED_EXCERPT, SHARED_EXCERPT_HYPNOGRAM
        from sleepnet.errors import SleepstreamError

        raise SleepstreamError("no demo recording: the simulator is not available and "
                               f"{SHARED_EXCERPT} is absent; pass --recording FILE") from None
    from sleepnet.user_dirs import demo_recording_path

    path = demo_recording_path()
    if not path.exists():
        console.print(f"simulating the demo night {path} (first run only)...")
    return ensure_demo_recording(path), None


def after_scoring(night_file: Path, recording: Path, hypnogram: Path | None, console,
                  channel: str = DEFAULT_CHANNEL, replay_t0: float | None = None) -> None:
    """Write the night's report (sleepnet.report) once the live session has ended.

    The report goes to ``<night_file stem>_report/`` and its summary is printed. A report
    that cannot be written is said in one line: the night itself is on disk.

    Parameters
    ----------
    night_file : Path
        The complete hypnogram TSV.
    recording : Path
        What was replayed.
    hypnogram : Path or None
        Its true stages when they came from a separate file (otherwise the labels inside
        the npz are used).
    console : rich.console.Console
        Where to print.
    channel : str
        The recording's channel that was replayed.
    replay_t0 : float, optional
        The replay's LSL time of its sample 0 (same process, same clock), s, so a session
        that missed the replay's first samples is still matched to the right part of the
        recording.
    """
    import math

    from sleepnet.errors import SleepstreamError
    from sleepnet.io.night_file import read_night
    from sleepnet.report.night_report import write_report
    from sleepstream.commands.report import print_summary as print_report

    try:
        offset_s = 0.0
        night = read_night(night_file)
        if replay_t0 is not None and len(night.sessions) <= 1 and math.isfinite(night.first_time_s):
            offset_s = max(0.0, night.first_time_s - replay_t0)
            if offset_s >= 1.0:
                console.print(f"demo: the live session joined the replay {offset_s:.0f} s in; "
                              "the report matches it from there")
        result = write_report(night_file, hypnogram=hypnogram, recording=recording, channel=channel,
                              offset_s=offset_s if offset_s >= 1.0 else 0.0)
    except SleepstreamError as exc:
        console.print(f"demo: report not written: {exc}")
        return
    print_report(console, result)


@command_doc
def run(args: argparse.Namespace) -> int:
    """Replay the night in a thread and score it live in this process, then report.

    Returns
    -------
    int
        0 when the night was scored to its end (summary and report printed), 130 when
        stopped (Ctrl-C, SIGTERM).

    Raises
    ------
    SleepstreamError
        A recording that cannot be read or is shorter than one 30-s epoch, no demo
        recording, a hypnogram file or weights that cannot be used.
    """
    from sleepstream.lsl_config import configure_lsl

    configure_lsl(network=args.network, session_id=args.session_id)

    import threading

    from rich.console import Console

    from replay.player import Player, load_source
    from scorer.session import LiveSession, SessionOptions
    from sleepnet.errors import SleepstreamError
    from sleepstream.console import print_live_summary
    from sleepstream.signals import ignore_file_size_signal, stop_on_signals
    from streamer.resolve import StreamQuery

    console = Console(stderr=True)
    if args.recording:
        recording, hypnogram = Path(args.recording), (Path(args.hypnogram) if args.hypnogram else None)
    else:
        recording, hypnogram = demo_recording(console)
    source = load_source(recording, args.channel, hypnogram=hypnogram)
    if source.n_epochs == 0:
        raise SleepstreamError(f"{recording}: shorter than one 30-s epoch")
    out = Path(args.out) if args.out else recording.with_name(
        f"{recording.stem}-live-{time.strftime('%Y%m%d-%H%M%S')}.tsv")
    tag = uuid.uuid4().hex[:8]
    name = f"sleepstream-demo-{tag}"
    speed = "max" if args.speed is None else f"{args.speed:g}x"
    # The replay never runs more than a minute of signal ahead of this session's stream, so
    # the default inlet buffer (360 s) is enough whatever the speed (auto_buffer off).
    session = LiveSession(SessionOptions(
        query=StreamQuery(source_id=f"sleepstream-demo:{tag}"), channel=source.channels[0], weights=args.weights,
        out=out, keep_state=False, outlet_name="sleepstream-demo", view="log" if args.no_display else "screen",
        title=f"sleepstream demo: {recording.name} at {speed}", epochs=source.n_epochs, idle_exit_s=10.0,
        auto_buffer=False))
    session.check()                  # the hypnogram file and the weights, before anything starts
    session.load_weights()
    ignore_file_size_signal()
    player = Player(source, name=name, source_id=f"sleepstream-demo:{tag}", speed=args.speed,
                    linger_s=float("inf"), consumer_position=lambda: session.samples_received)
    stop_replay = threading.Event()
    player.start(stop_replay)
    try:
        with session:                # the model only once the inputs are good
            console.print(f"demo: replaying {recording} ({source.n_epochs} epochs, {source.duration_s / 3600:.1f} h "
                          f"at {source.sfreq:g} Hz) at {speed} and scoring it live with model "
                          f"{session.model.model_id}")
            session.build()
            with stop_on_signals() as stop:
                summary = session.run(stop)
    finally:
        stop_replay.set()
        player.join(5.0)
    model = session.model
    print_live_summary(console, summary, str(out))
    if summary.ended_by == "stop":
        return 130
    after_scoring(out, recording, hypnogram, console, channel=args.channel, replay_t0=player.t0)
    console.print(f"model: {model.summary}")
    if not args.recording:
        console.print("demo: the night replayed is SIMULATED EEG (sleepnet.sim); the agreement above is "
                      "this model on simulated EEG, not a measure on real nights (see the model card)")
    return 0
