"""One live session, built in one place: resolve the stream, open it and its truth stream,
choose the model, build the sinks in order, run the loop, release everything.

``sleepstream live`` and ``sleepstream demo`` build their sessions here, and so do the
benchmarks that score live in-process; the ward's workers are ``sleepstream live``
processes. A command keeps only its arguments and its words: it turns its flags into
:class:`SessionOptions`; the errors name parameters (``channel_index``), and the command
line says them as its flags (``--channel-index``; :meth:`sleepnet.errors.SleepstreamError.naming`).

Lifecycle
---------
:class:`LiveSession` goes through explicit steps; each may be called alone, and a later
one does the earlier ones that were not done::

    session = LiveSession(SessionOptions(query=StreamQuery(source_id="amp-1"), out="night.tsv"))
    with session:                  # open(): the stream, its truth stream, the model
        print(session.model.summary)
        session.build()            # the sinks, in order, and the loop
        summary = session.run()    # until stop, SessionOptions.epochs, or silence
    # close(): every sink closed, the streams disconnected

* :meth:`LiveSession.check`: what can be refused before anything starts (the hypnogram
  file: writable, not held by another scorer).
* :meth:`LiveSession.open`: :meth:`check`; resolve the stream
  (:func:`streamer.resolve.resolve`) and refuse one out of bounds before the model loads
  (:func:`streamer.stream.check_stream_info`); load ``weights`` (a bad one fails before
  the stream is opened; :meth:`LiveSession.load_weights` loads them earlier still, for a
  caller that starts something first); open the stream without starting the flow of samples, and its
  truth stream; then choose the model: ``weights`` when given, else the scale-free model
  for per-epoch normalised input (``normalized``, or the stream's description says so),
  else the default model; with one torch thread when the model uses torch
  (:func:`use_one_torch_thread`).
* :meth:`LiveSession.build`: the sinks, in this order, then the
  :class:`scorer.live.LiveScorer`:

  1. the hypnogram file (``out``), the durable record;
  2. the stimulation gate (``gate``), which asks the file whether the night is being
     recorded: the file has tried to write an epoch's row before the gate decides on that
     epoch, so NOT RECORDING never opens a window (the order is a safety property);
  3. the LSL stage and probability outlets (``outlets``);
  4. the view (``view``): the screen, one log line per epoch, or JSON lines on stdout (which
     also follow the gate's events), or none.

  Sinks given as ``first_sinks`` come before all of these and ``last_sinks`` after them.
* :meth:`LiveSession.run`: the loop (:meth:`scorer.live.LiveScorer.run`); samples start
  to flow here.
* :meth:`LiveSession.close`: every sink closed in order (a failure is logged and the rest
  are closed), the truth stream and the stream disconnected; a second call does nothing.
  :meth:`open` and :meth:`build` release what they had opened when they fail half-way,
  and the ``with`` block closes the session however it ends.

The session owns every sink it holds, those given included: it closes them.
"""
from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sleepnet.errors import SleepstreamError
from sleepnet.errors import parameter as marked
from streamer.resolve import StreamQuery
from streamer.stream import DEFAULT_BUFLEN_S, DEFAULT_CHANNEL, unit_scale_to_uv

from .lsl_outlets import DEFAULT_OUTLET_NAME
from .sinks import SafeCaller, Sink, as_sink, sink_name

if TYPE_CHECKING:  # pragma: no cover - typing only
    from sleepnet.models.base import StagingModel
    from streamer.stream import EEGStream, StreamDescription
    from streamer.truth import TruthStream

    from .gate.rules import GateRule
    from .gate.sink import GateSink
    from .hypnogram_file import HypnogramFile, RecordingState
    from .live import LiveScorer, LiveSummary

log = logging.getLogger(__name__)

#: What a session may show: the live screen, one log line per epoch, JSON lines on stdout, nothing.
VIEWS = ("screen", "log", "json", "none")

_NEW, _OPEN, _BUILT, _RUNNING, _RAN, _CLOSED = "new", "open", "built", "running", "ran", "closed"


class SessionOptionError(SleepstreamError):
    """An option a session cannot take; the message names the parameter.

    Parameters
    ----------
    parameter : str
        The :class:`SessionOptions` field (``channel_index``).
    problem : str
        What is wrong, said after the name (``must be 0 or more, got -1``).
    """

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{marked(parameter)} {problem}")
        self.parameter = parameter
        self.problem = problem

    def __reduce__(self):
        return type(self), (self.parameter, self.problem)


@dataclass(frozen=True)
class SessionOptions:
    """What a live session scores and where it sends the stages.

    Parameters
    ----------
    query : StreamQuery
        Which stream (default: the first stream of type EEG).
    timeout_s : float
        How long to look for it, s.
    channel : str
        The channel label to score, or a derivation (``F4-M1``), as for
        :class:`streamer.stream.EEGStream`.
    channel_index : int, optional
        Pick the channel by 0-based index instead.
    units : str, optional
        Override the channel's declared unit: ``uV``, ``mV`` or ``V``.
    normalized : bool
        The signal is per-epoch normalised (each 30-s epoch z-scored): scored with the
        scale-free model and level-free quality checks. A stream whose description says so
        is taken as such without it.
    weights : str or Path, optional
        A shipped model's name or a weights folder (default: the default model, or the
        scale-free one for normalised input).
    session_start : str, optional
        ``lights-off`` or ``unknown`` (:data:`sleepnet.night_context.SESSION_STARTS`):
        whether the time since the session started counts as the night's clock; None: the
        model's own default. A night state carried on from (``keep_state``) wins.
    out : str or Path, optional
        The hypnogram TSV (:class:`scorer.hypnogram_file.HypnogramFile`); none: no file.
    keep_state : bool
        Keep the night-level state beside ``out`` (``<out>.state.json``), so a session
        started again on the same file carries on with its night.
    outlet_name : str
        Prefix of the LSL outlets (``<name>-stage``, ``<name>-probabilities``,
        ``<name>-gate``).
    outlets : bool
        Publish the stages on LSL.
    view : str
        ``screen``, ``log``, ``json`` or ``none`` (:data:`VIEWS`).
    title : str, optional
        The screen's title (default: ``sleepstream live: <stream> / <channel>``).
    gate : scorer.gate.rules.GateRule, optional
        Stimulation windows with this rule (:func:`scorer.gate.rules.parse_rule`); none: no gate.
    epochs : int, optional
        Stop after this many epochs (default: until stopped).
    idle_exit_s : float, optional
        Stop when no sample has come for this long, s (default: wait).
    buffer_s : int
        Inlet buffer, s of signal (:class:`streamer.stream.EEGStream`'s ``max_buflen_s``).
    auto_buffer : bool
        Enlarge the buffer for a fast replay that says so in its description.

    Raises
    ------
    SessionOptionError
        ``channel_index`` below 0, ``units`` not a voltage, ``epochs`` below 1, a
        ``session_start`` that is not one of ``lights-off``, ``unknown``, or a ``view`` that
        is not one of :data:`VIEWS`.
    """

    query: StreamQuery = field(default_factory=StreamQuery.from_options)
    timeout_s: float = 10.0
    channel: str = DEFAULT_CHANNEL
    channel_index: int | None = None
    units: str | None = None
    normalized: bool = False
    weights: str | Path | None = None
    session_start: str | None = None
    out: str | Path | None = None
    keep_state: bool = True
    outlet_name: str = DEFAULT_OUTLET_NAME
    outlets: bool = True
    view: str = "screen"
    title: str | None = None
    gate: GateRule | None = None
    epochs: int | None = None
    idle_exit_s: float | None = None
    buffer_s: int = DEFAULT_BUFLEN_S
    auto_buffer: bool = True

    def __post_init__(self) -> None:
        if self.channel_index is not None and self.channel_index < 0:
            raise SessionOptionError("channel_index", f"must be 0 or more, got {self.channel_index}")
        if self.units is not None and unit_scale_to_uv(self.units) is None:
            raise SessionOptionError("units", f"{self.units!r}: use uV, mV or V")
        if self.epochs is not None and self.epochs < 1:
            raise SessionOptionError("epochs", f"must be at least 1, got {self.epochs}")
        if self.session_start is not None:
            from sleepnet.night_context import SESSION_STARTS

            if self.session_start not in SESSION_STARTS:
                raise SessionOptionError("session_start", f"{self.session_start!r}: use one of {', '.join(SESSION_STARTS)}")
        if self.view not in VIEWS:
            raise SessionOptionError("view", f"{self.view!r}: use one of {', '.join(VIEWS)}")


def use_one_torch_thread() -> None:
    """Score with one torch thread, when the model loaded is one that uses torch (the
    CNN–LSTM; the default feature stager never imports it). Live scoring runs the model
    on one epoch at a time: intra-op threads gain nothing there and, on a shared CPU,
    cost a lot (measured with benchmarks/live_latency.py on 2 busy cores: median latency
    31 ms and p95 256 ms with 2 threads, 2.3 ms and 6.4 ms with 1)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def night_state_path(out: str | Path | None) -> Path | None:
    """The night-state file beside a hypnogram file (``night.tsv`` -> ``night.tsv.state.json``).

    A state file whose hypnogram is gone, or holds no scored epoch, belongs to a night that
    was deleted: it is removed here.

    Parameters
    ----------
    out : str or Path, optional
        The hypnogram file.

    Returns
    -------
    Path or None
        The state file's path (None without ``out``).
    """
    if not out:
        return None
    from .hypnogram_file import inspect_file

    p = Path(out)
    state = p.with_name(p.name + ".state.json")
    if state.exists() and (not p.exists() or inspect_file(p).rows == 0):
        state.unlink()
    return state


class LiveSession:
    """A live session from options to summary (see the module text for the steps).

    Parameters
    ----------
    options : SessionOptions
        What to score and where the stages go.
    model : StagingModel, optional
        A model already loaded (a benchmark's): used as it is, whatever the input
        (``options.weights`` is then not used), and its torch threads are left as they are.
        Default: chosen when the session opens.
    first_sinks : sequence of Sink
        Sinks before the session's own (each record reaches them first).
    last_sinks : sequence of Sink
        Sinks after the session's own.

    Attributes
    ----------
    stream : EEGStream or None
        The stream, once open.
    truth : TruthStream or None
        Its truth stream, when it has one.
    description : StreamDescription or None
        What was found when the stream was opened.
    normalised_by : str or None
        Why the input is taken as per-epoch normalised: ``"normalized"`` (the option),
        ``"stream"`` (its description says so), or None (µV input).
    model : StagingModel or None
        The model, once open.
    hypnogram : HypnogramFile or None
        The hypnogram file sink, once built.
    gate : GateSink or None
        The gate sink, once built.
    scorer : LiveScorer or None
        The loop, once built.
    summary : LiveSummary or None
        How the last :meth:`run` went.
    """

    def __init__(self, options: SessionOptions, *, model: StagingModel | None = None,
                 first_sinks: Sequence[Sink | object] = (), last_sinks: Sequence[Sink | object] = ()) -> None:
        self.options = options
        self._given_model = model
        self._named: StagingModel | None = None
        self._first = tuple(as_sink(s) for s in first_sinks)
        self._last = tuple(as_sink(s) for s in last_sinks)
        self._own: list[Sink] = []
        self.stream: EEGStream | None = None
        self.truth: TruthStream | None = None
        self.description: StreamDescription | None = None
        self.normalised_by: str | None = None
        self.model: StagingModel | None = model
        self.hypnogram: HypnogramFile | None = None
        self.gate: GateSink | None = None
        self.scorer: LiveScorer | None = None
        self.summary: LiveSummary | None = None
        self._state = _NEW
        self._call = SafeCaller(log)

    def __repr__(self) -> str:
        o, d = self.options, self.description
        what = (f"'{d.name}' / {d.channel_label} @ {d.sfreq_hz:g} Hz" if d is not None
                else o.query.describe())
        model = self.model.model_id if self.model is not None else (str(o.weights) if o.weights else "default model")
        state = self._state
        if self.scorer is not None:
            state += f", {self.scorer.n_epochs} epochs"
        if self._state in (_BUILT, _RUNNING, _RAN) or (self._state == _CLOSED and self.scorer is not None):
            outputs = f"sinks {', '.join(sink_name(s) for s in self.sinks) or 'none'}"
        else:
            parts = [f"out {o.out}" if o.out else "no file"]
            parts += ["gate"] if o.gate is not None else []
            parts += [f"outlets '{o.outlet_name}'"] if o.outlets else []
            parts += [f"view {o.view}"]
            outputs = ", ".join(parts)
        return f"<LiveSession {what}, model {model}: {state}; {outputs}>"

    # -- state ------------------------------------------------------------------------------
    @property
    def sinks(self) -> tuple[Sink, ...]:
        """Every sink, in the order each record reaches them (the session's own once built)."""
        return (*self._first, *self._own, *self._last)

    @property
    def samples_received(self) -> int:
        """Samples pulled so far (0 before the stream is open); safe from another thread."""
        stream = self.stream
        return stream.samples_received if stream is not None else 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._state == _CLOSED

    # -- lifecycle ----------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse what can be refused before anything starts: a hypnogram file that cannot
        be appended to or is held by another scorer.

        Raises
        ------
        scorer.hypnogram_file.HypnogramFileError
            One line naming the file.
        """
        if self.options.out:
            from .hypnogram_file import check_writable

            check_writable(self.options.out)

    def load_weights(self) -> StagingModel | None:
        """Load the model named by ``options.weights`` now (a caller that starts something
        first, as the demo starts its replay, learns of a bad name before it does); :meth:`open`
        then uses it. Without ``weights``, or with a model given, nothing is loaded.

        Returns
        -------
        StagingModel or None
            The model named.

        Raises
        ------
        sleepnet.errors.WeightsError
            ``weights`` cannot be loaded.
        """
        if self._given_model is None and self.options.weights is not None and self._named is None:
            from sleepnet.weights import load_model

            self._named = load_model(self.options.weights)
        return self._named

    def open(self) -> LiveSession:
        """Resolve and open the stream and its truth stream, and choose the model (see the
        module text); released again when a step fails.

        Returns
        -------
        LiveSession
            Itself, open: ``stream``, ``truth`` and ``model`` set (a session already open
            or built is returned as it is).

        Raises
        ------
        streamer.errors.StreamNotFoundError
            No matching stream within ``timeout_s`` (the message lists the visible ones).
        streamer.errors.StreamError
            A stream out of bounds, no such channel, units that are not a voltage, no answer.
        sleepnet.errors.WeightsError
            ``weights`` cannot be loaded.
        scorer.hypnogram_file.HypnogramFileError
            ``out`` cannot be written (:meth:`check`).
        RuntimeError
            The session was closed.
        """
        if self._state == _CLOSED:
            raise RuntimeError("a closed LiveSession cannot be opened again; make a new one")
        if self._state != _NEW:
            return self
        self._advance(self._open, _OPEN)
        log.info("%r", self)
        return self

    def _advance(self, step: Callable[[], None], state: str) -> None:
        """Run one step of the session and take ``state``; released again when the step fails."""
        try:
            step()
        except BaseException:
            self.close()
            raise
        self._state = state

    def _open(self) -> None:
        from sleepnet.normalised import STREAM_KIND, model_for_input
        from sleepnet.weights import load_model
        from streamer.resolve import resolve
        from streamer.stream import check_stream_info

        from .live import open_resolved

        o = self.options
        self.check()
        found = resolve(o.query, o.timeout_s)
        check_stream_info(found.info)        # a stream out of bounds: refused before the model loads
        named = self.load_weights()          # a bad weights fails before the stream is opened
        # Samples flow from run() on: whatever arrives meanwhile would wait in liblsl's queue.
        self.stream, self.truth = open_resolved(found, channel=o.channel, channel_index=o.channel_index,
                                                units=o.units, timeout_s=o.timeout_s, buffer_s=o.buffer_s,
                                                auto_buffer=o.auto_buffer, subscribe=False)
        desc = self.description = self.stream.description
        self.normalised_by = ("normalized" if o.normalized
                              else "stream" if desc.normalisation == STREAM_KIND else None)
        if self._given_model is None:
            wanted = model_for_input(o.weights, self.normalised_by is not None)
            self.model = named if named is not None and wanted == o.weights else load_model(wanted)
            use_one_torch_thread()

    def build(self) -> LiveSession:
        """Build the sinks in order and the loop (opening the session first if it is not
        open); released again when a step fails.

        Returns
        -------
        LiveSession
            Itself, built: its ``scorer`` (and ``hypnogram``, ``gate`` where asked for)
            made; :meth:`run` scores.

        Raises
        ------
        scorer.hypnogram_file.HypnogramFileError
            The hypnogram file cannot be opened (e.g. another scorer took it meanwhile).
        RuntimeError
            The session was closed.
        """
        self.open()
        if self._state != _OPEN:
            return self
        self._advance(self._build, _BUILT)
        return self

    def _build(self) -> None:
        from sleepnet.normalised import quality_thresholds

        from .live import LiveScorer

        o, desc, model = self.options, self.description, self.model
        assert self.stream is not None and desc is not None and model is not None
        hyp = None
        if o.out:
            from .hypnogram_file import HypnogramFile

            # The durable record first: the gate then knows whether an epoch's row is on disk
            # before it decides on that epoch (NOT RECORDING never opens a window).
            hyp = self.hypnogram = HypnogramFile(o.out, desc.name, model.model_id)
            self._own.append(hyp)
        recording = hyp.recording_state if hyp is not None else None
        if o.gate is not None:
            from .gate.sink import GateSink

            self.gate = GateSink(desc.sfreq_hz, o.gate, o.outlet_name, source_stream=desc.name,
                                 recording=(lambda: hyp.recording) if hyp is not None else None)
            self._own.append(self.gate)
        if o.outlets:
            from .lsl_outlets import LslOutletSink

            self._own.append(LslOutletSink(o.outlet_name, model.model_id, source_stream=desc.name,
                                           source_channel=desc.channel_label))
        view = self._make_view(recording)
        if view is not None:
            self._own.append(view)
        self.scorer = LiveScorer(self.stream, model, self.sinks, self.truth,
                                 state_path=night_state_path(o.out) if o.keep_state else None,
                                 thresholds=quality_thresholds(self.normalised_by is not None),
                                 session_start=o.session_start)
        start = self.scorer.session_start
        if start is not None and view is not None and hasattr(view, "state"):   # the live screen's header
            view.state.title += f" · start: {start}"

    def _make_view(self, recording: Callable[[], RecordingState] | None) -> Sink | None:
        """The view sink of ``options.view``: the screen falls back to log lines where the
        display module is not available."""
        o, desc = self.options, self.description
        assert desc is not None
        if o.view == "none":
            return None
        if o.view == "json":
            from .json_lines import JsonLinesSink

            # epochs numbered as in the hypnogram file; the gate's events too (the ward's screen)
            lines = JsonLinesSink(sys.stdout, self.hypnogram.first_epoch if self.hypnogram is not None else 0,
                                  recording=recording)
            if self.gate is not None:
                lines.follow_gate(self.gate)
            return lines
        if o.view == "screen":
            try:
                from .display import DisplaySink
            except ImportError:
                log.warning("the live display is not available; logging epochs instead")
            else:
                return DisplaySink(title=o.title or f"sleepstream live: {desc.name} / {desc.channel_label}",
                                   recording=recording)
        from .bounded_output import route_logger_to_stdout
        from .log_sink import EPOCH_LOGGER, LogSink

        # one plain line per epoch on stdout, never blocking the loop (a stalled terminal loses lines)
        route_logger_to_stdout(EPOCH_LOGGER, bounded=True)
        return LogSink()

    def run(self, stop: threading.Event | None = None) -> LiveSummary:
        """Score until ``stop`` is set, ``options.epochs`` epochs are scored, or no sample
        has come for ``options.idle_exit_s`` (opening and building first where not done).
        The session stays open: :meth:`close` (or the ``with`` block) releases it.

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to end the session (e.g. on Ctrl-C).

        Returns
        -------
        scorer.live.LiveSummary
            How the session went (also kept in :attr:`summary`).
        """
        self.build()
        assert self.scorer is not None
        self._state = _RUNNING
        try:
            self.summary = self.scorer.run(stop=stop, max_epochs=self.options.epochs,
                                           idle_exit_s=self.options.idle_exit_s)
        finally:
            if self._state == _RUNNING:
                self._state = _RAN
        return self.summary

    def close(self) -> None:
        """Close every sink in order (a failure is logged and the rest are closed) and
        disconnect the truth stream and the stream; a second call does nothing."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        if self.scorer is not None:
            self.scorer.close()
            return
        self._call.close_all(self.sinks)
        if self.truth is not None:
            self.truth.disconnect()
        if self.stream is not None:
            self.stream.disconnect()

    def __enter__(self) -> LiveSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
