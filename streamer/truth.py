"""The true stages of a replayed recording, read from its ``<name>-truth`` Markers stream.

The replay tool sends one marker per 30-s epoch, stamped at the epoch's last sample, so
a live scorer can line each true stage up with the epoch it scored (by time) and show a
running agreement. Like :class:`streamer.stream.EEGStream`, the inlet is opened without
LSL's own recovery and reopened by ``source_id`` when the replay restarts.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from sleepnet.stages import TRUTH_SUFFIX

from .resolve import StreamQuery, reopen_first

log = logging.getLogger(__name__)

#: How long to look for a truth stream that was not among the streams visible with its EEG
#: stream (s). A replay makes its truth outlet right after its EEG outlet, so it is nearly
#: always visible with it; this covers the moment between. Without the visible streams
#: to look in, the search waits RESOLVE_TIMEOUT_S.
LATE_TRUTH_S = 0.3
RESOLVE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class TruthMarker:
    """A true stage, as a replay's ``<name>-truth`` stream sends it: one marker per 30-s epoch
    (:meth:`TruthStream.poll` returns those that have arrived).

    Parameters
    ----------
    time : float
        LSL time (s, this machine's clock) of the epoch's last sample.
    stage : str
        W, N1, N2, N3, REM or UNS.
    """

    time: float
    stage: str


def truth_query(eeg_name: str, eeg_source_id: str) -> StreamQuery:
    """Where the truth of an EEG stream lives.

    Parameters
    ----------
    eeg_name : str
        The EEG stream's name.
    eeg_source_id : str
        The EEG stream's source_id; empty when it has none.

    Returns
    -------
    StreamQuery
        Its source_id plus ``-truth`` (the replay tool's convention), or its name plus
        ``-truth`` when it has no source_id.
    """
    if eeg_source_id:
        return StreamQuery(source_id=eeg_source_id + TRUTH_SUFFIX)
    return StreamQuery(name=eeg_name + TRUTH_SUFFIX)


class TruthStream:
    """Markers inlet with an explicit lifecycle (:meth:`connect`, :meth:`poll`, :meth:`disconnect`).

    Parameters
    ----------
    info : pylsl.StreamInfo
        The truth stream's description (see :meth:`find`).
    """

    def __init__(self, info: pylsl.StreamInfo) -> None:
        self._info = info
        self._inlet: pylsl.StreamInlet | None = None
        self._tc = 0.0
        self._resolver: pylsl.ContinuousResolver | None = None
        self._dead_uid = ""
        self._uid = ""
        self.name = info.name()
        self.source_id = info.source_id()

    @classmethod
    def find(cls, eeg_name: str, eeg_source_id: str, visible: Sequence[pylsl.StreamInfo] | None = None,
             timeout_s: float | None = None) -> TruthStream | None:
        """Connect to the truth stream of an EEG stream, or None when there is none.

        Parameters
        ----------
        eeg_name, eeg_source_id : str
            The EEG stream's name and source_id (see :func:`truth_query`).
        visible : sequence of pylsl.StreamInfo, optional
            The streams seen when the EEG stream was found
            (:func:`streamer.resolve.resolve`); the truth stream is taken from them, or looked
            for ``LATE_TRUTH_S`` more. Without them the search takes up to ``RESOLVE_TIMEOUT_S``,
            which a stream without truth (any amplifier) pays in full at start-up.
        timeout_s : float, optional
            Overrides either wait (s).

        Returns
        -------
        TruthStream or None
            The connected truth stream, or None when none was found or it did not answer.
        """
        q = truth_query(eeg_name, eeg_source_id)
        prop, value = ("source_id", q.source_id) if q.source_id else ("name", q.name)
        found = [s for s in (visible or ()) if q.matches(s)]
        if not found:
            wait = timeout_s if timeout_s is not None else (LATE_TRUTH_S if visible is not None else RESOLVE_TIMEOUT_S)
            found = pylsl.resolve_byprop(prop, value, minimum=1, timeout=wait)
        if not found:
            return None
        ts = cls(found[0])
        try:
            ts.connect()
        except (LslTimeoutError, LostError):
            log.warning("truth stream %s did not answer; scoring without truth", value)
            return None
        return ts

    def connect(self, timeout_s: float = 2.0) -> None:
        """Open the inlet (without LSL's own recovery) and measure the time correction once.

        Parameters
        ----------
        timeout_s : float
            How long to wait for the outlet to answer, s.

        Raises
        ------
        pylsl.util.TimeoutError
            The outlet did not answer within ``timeout_s``.
        """
        self._open(self._info, timeout_s)

    def _open(self, info: pylsl.StreamInfo, timeout_s: float) -> None:
        inlet = pylsl.StreamInlet(info, max_buflen=360, recover=False)
        inlet.open_stream(timeout=timeout_s)
        self._tc = inlet.time_correction(timeout=timeout_s)
        self._uid = info.uid()
        self._inlet = inlet
        log.info("reading true stages from '%s'", info.name())

    def poll(self) -> list[TruthMarker]:
        """Markers that have arrived since the last call (never blocks).

        When the stream is lost, it watches for the same ``source_id`` and reopens it on a
        later call.

        Returns
        -------
        list of TruthMarker
            The new markers, times on this machine's clock; empty while disconnected.
        """
        if self._inlet is None:
            self._try_reconnect()
            return []
        try:
            values, stamps = self._inlet.pull_chunk(timeout=0.0, max_samples=4096)
        except LostError:
            self._dead_uid = self._uid
            self._inlet = None
            self._resolver = pylsl.ContinuousResolver(prop="source_id", value=self.source_id, forget_after=2.0)
            log.info("truth stream '%s' closed; watching for it to return", self.name)
            return []
        return [TruthMarker(time=float(t) + self._tc, stage=str(v[0]).strip()) for v, t in zip(values, stamps)]

    def _try_reconnect(self) -> None:
        if self._resolver is None:
            return
        if reopen_first(self._resolver, self._dead_uid, lambda i: self._open(i, timeout_s=1.0),
                        retry_on=(LslTimeoutError, LostError)) is not None:
            self._resolver = None

    def disconnect(self) -> None:
        """Close the inlet and stop watching for the stream to return."""
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            except Exception:  # pragma: no cover
                pass
        self._inlet = None
        self._resolver = None
