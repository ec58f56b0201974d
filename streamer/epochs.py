"""Chunks of samples to timed, model-ready epochs through sleepnet's one preprocessor.

:class:`EpochAssembler` feeds :class:`sleepnet.preprocess.Preprocessor` chunk by chunk,
exactly as batch scoring feeds it a whole file, so live and batch epochs are
bit-identical for the same samples. Epochs are cut by counting samples: epoch ``k``
covers input samples ``round(k*E*fs)`` to ``round((k+1)*E*fs) - 1`` (E = 30 s);
timestamps are used only to stamp each epoch with the time of its first and last sample
and, upstream in :mod:`streamer.stream`, to find gaps.

Gaps and the model's context (the rule)
---------------------------------------
* Missing samples (a gap found from the timestamps, or NaN/Inf sent by the source) are
  fed as NaN: the preprocessor holds the last valid value through its filter, counts
  them, and flags the epoch ``gap``. Epoch numbers and times keep following the clock,
  so a gap occupies its place in the hypnogram.
* An epoch missing more than 25 % of its samples (7.5 s;
  ``QualityThresholds.unscored_missing_fraction``) is not scorable: it is recorded as
  ``UNS`` with the ``gap`` flag, never given a made-up stage. With less missing it is
  scored and keeps the ``gap`` flag.
* After any unscored epoch (a long gap, a flat line, mostly clipped signal) the model's
  five-epoch context restarts (:class:`sleepnet.models.cnn_lstm_stager.CnnLstmStager`): the next
  epochs are scored from a fresh window, flagged ``warmup`` until four scorable epochs
  precede them. A short gap inside an epoch keeps the context.
* Long gaps are fed in blocks of at most ``block_s`` seconds, so memory stays bounded
  whatever their length.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sleepnet.preprocess import Epoch, PreprocessConfig, Preprocessor, QualityThresholds

from .errors import StreamError
from .stream import SampleChunk


@dataclass(frozen=True)
class TimedEpoch:
    """A model-ready epoch with its place in time.

    Parameters
    ----------
    epoch : sleepnet.preprocess.Epoch
        The preprocessed epoch (index, data, missing fraction, flags, scorable).
    start_time, end_time : float
        LSL time (s, this machine's clock) of its first and last input sample.
    arrival_time : float
        Local LSL clock (s) when its last sample was pulled; latency is measured from here.
    """

    epoch: Epoch = field(repr=False)
    start_time: float
    end_time: float
    arrival_time: float

    @property
    def index(self) -> int:
        """The epoch's number, counted from the stream's first sample (0-based)."""
        return self.epoch.index


class EpochAssembler:
    """Stateful: :class:`SampleChunk` in, :class:`TimedEpoch` out, in order.

    Parameters
    ----------
    sfreq_hz : float
        The stream's nominal rate.
    config : PreprocessConfig
        The model's preprocessing (from the loaded weights).
    block_s : float
        Longest run of missing samples fed to the preprocessor at once.
    thresholds : QualityThresholds, optional
        Quality rules (default: the µV ones; see :func:`sleepnet.normalised.quality_thresholds`).
    """

    def __init__(self, sfreq_hz: float, config: PreprocessConfig, block_s: float = 30.0,
                 thresholds: QualityThresholds | None = None) -> None:
        try:
            self._pre = Preprocessor(sfreq_hz, config, thresholds)
        except ValueError as exc:
            raise StreamError(f"cannot score a stream at {sfreq_hz:g} Hz: {exc}") from None
        self.sfreq_hz = float(sfreq_hz)
        self._epoch_in = config.epoch_s * self.sfreq_hz  # input samples per epoch (may be fractional)
        self._block = max(1, int(round(block_s * self.sfreq_hz)))
        self._n_in = 0                      # input samples fed so far (gap fills included)
        self._last_ts: float | None = None
        self._next_start = 0                # next epoch whose first-sample time is unknown
        self._next_end = 0                  # next epoch whose last-sample time is unknown
        self._start_ts: dict[int, float] = {}
        self._end_ts: dict[int, tuple[float, float]] = {}
        self._ready: deque[Epoch] = deque()

    @property
    def samples_in(self) -> int:
        """Input samples fed so far, gap fills included."""
        return self._n_in

    def first_sample(self, k: int) -> int:
        """Index of the first input sample of epoch ``k``.

        Parameters
        ----------
        k : int
            Epoch number (0-based).

        Returns
        -------
        int
            ``round(k * epoch_s * sfreq_hz)``: the input sample (gap fills counted) that starts it.
        """
        return int(round(k * self._epoch_in))

    def push(self, chunk: SampleChunk) -> list[TimedEpoch]:
        """Feed one chunk (its gap first); return the epochs it completes.

        Parameters
        ----------
        chunk : SampleChunk
            The next chunk from the stream; its ``missing_before`` samples are fed as NaN
            first (in blocks of at most ``block_s``), then its samples (µV).

        Returns
        -------
        list of TimedEpoch
            The epochs whose last input sample this chunk brought, in order (often none).
        """
        out: list[TimedEpoch] = []
        missing = int(chunk.missing_before)
        if missing and self._last_ts is not None:
            t_prev = self._last_ts
            for off in range(0, missing, self._block):
                nb = min(self._block, missing - off)
                ts = t_prev + (off + 1 + np.arange(nb)) / self.sfreq_hz
                out += self._feed(np.full(nb, np.nan), ts, chunk.arrival_time)
        if len(chunk.samples_uv):
            out += self._feed(chunk.samples_uv, chunk.timestamps, chunk.arrival_time)
        return out

    def _feed(self, x: np.ndarray, ts: np.ndarray, arrival: float) -> list[TimedEpoch]:
        a = self._n_in
        b = a + len(x)
        while (i := self.first_sample(self._next_start)) < b:
            self._start_ts[self._next_start] = float(ts[i - a])
            self._next_start += 1
        while (i := self.first_sample(self._next_end + 1) - 1) < b:
            self._end_ts[self._next_end] = (float(ts[i - a]), arrival)
            self._next_end += 1
        self._n_in = b
        self._last_ts = float(ts[-1])
        self._ready.extend(self._pre.push(x))
        out: list[TimedEpoch] = []
        # An epoch is complete when its last input sample has arrived (the resampler
        # may finish it a sample or two earlier).
        while self._ready and self._ready[0].index in self._end_ts:
            e = self._ready.popleft()
            end, arr = self._end_ts.pop(e.index)
            out.append(TimedEpoch(epoch=e, start_time=self._start_ts.pop(e.index), end_time=end,
                                  arrival_time=arr))
        return out
