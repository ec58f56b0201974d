"""Bounded records of a live session: what its summary and screen report, in memory that
stays flat however long the session runs (a 7-day session holds what a 1-hour one does).

* :class:`LatencyStats`: count, maximum and percentiles of every record's latency. Exact
  over the first ``exact_keep`` records (4096, 34 h of epochs), then read from a fixed
  histogram of log-spaced bins (100 per decade, 1 µs to 1000 s; each 2.3 % wide, so a
  percentile lands within about 1.2 % of the exact one).
* :class:`AgreementCounts`: running counts of (true, scored) stage pairs, from which
  :func:`sleepnet.metrics.agreement_from_counts` gives exactly the agreement over every
  pair, without keeping the pairs.
* :class:`RecentDict`: a dict that forgets its oldest keys beyond a size.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Generic, TypeVar

import numpy as np

from sleepnet.metrics import Agreement, agreement_from_counts
from sleepnet.stages import N_STAGES

EXACT_KEEP = 4096
_LOG_LO, _LOG_HI, _PER_DECADE = -3.0, 6.0, 100      # bins from 1e-3 ms to 1e6 ms
_N_BINS = int((_LOG_HI - _LOG_LO) * _PER_DECADE)

K = TypeVar("K")
V = TypeVar("V")


class LatencyStats:
    """Latencies (ms) of a session's records, in constant memory.

    Parameters
    ----------
    exact_keep : int
        Records whose latencies are kept as they are; percentiles are exact until
        there are more, then come from the histogram (within about 1.2 %).
    """

    def __init__(self, exact_keep: int = EXACT_KEEP) -> None:
        self._exact = np.empty(max(1, int(exact_keep)), dtype=np.float64)
        self._hist = np.zeros(_N_BINS + 2, dtype=np.int64)   # [under, bins..., over]
        self.count = 0
        self.max_ms = -math.inf
        self.min_ms = math.inf

    def __repr__(self) -> str:
        return f"<LatencyStats {self.count} records, {'exact' if self.exact else 'histogram'}>"

    @property
    def exact(self) -> bool:
        """Whether percentiles are still computed from every value."""
        return self.count <= len(self._exact)

    def add(self, latency_ms: float) -> None:
        """Count one latency; NaN and infinities are ignored.

        Parameters
        ----------
        latency_ms : float
            A record's latency, ms.
        """
        v = float(latency_ms)
        if not math.isfinite(v):
            return
        if self.count < len(self._exact):
            self._exact[self.count] = v
        self.count += 1
        self.max_ms = max(self.max_ms, v)
        self.min_ms = min(self.min_ms, v)
        if v <= 0:
            self._hist[0] += 1
            return
        b = math.floor((math.log10(v) - _LOG_LO) * _PER_DECADE)
        self._hist[min(max(b, -1), _N_BINS) + 1] += 1

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of the latencies counted.

        Parameters
        ----------
        q : float
            The percentile, 0-100.

        Returns
        -------
        float
            The percentile in ms (exact while :attr:`exact`, else within about 1.2 %);
            NaN before any record.
        """
        if self.count == 0:
            return float("nan")
        if self.exact:
            return float(np.percentile(self._exact[:self.count], q))
        rank = q / 100.0 * (self.count - 1)            # numpy's default (linear) rank
        i = int(np.searchsorted(np.cumsum(self._hist), math.floor(rank) + 1))
        if i == 0:
            v = self.min_ms
        elif i == _N_BINS + 1:
            v = self.max_ms
        else:                                           # the geometric middle of the bin
            v = 10.0 ** (_LOG_LO + (i - 1 + 0.5) / _PER_DECADE)
        return float(min(max(v, self.min_ms), self.max_ms))

    def summary(self) -> dict[str, float]:
        """The latency figures a session's summary reports.

        Returns
        -------
        dict of str to float
            ``median_ms``, ``p95_ms``, ``max_ms`` over every record (ms); ``{}`` before any.
        """
        if self.count == 0:
            return {}
        return {"median_ms": self.percentile(50), "p95_ms": self.percentile(95), "max_ms": float(self.max_ms)}


class AgreementCounts:
    """Running counts of (true, scored) stage-code pairs, in a (6, 6) table.

    -1 or any code outside 0..4 counts as unscored; pairs can be taken back when an epoch
    is rescored.
    """

    def __init__(self) -> None:
        self.counts = np.zeros((N_STAGES + 1, N_STAGES + 1), dtype=np.int64)

    def __repr__(self) -> str:
        return f"<AgreementCounts {self.total} pairs>"

    @property
    def total(self) -> int:
        """Pairs counted, unscored ones included."""
        return int(self.counts.sum())

    @staticmethod
    def _slot(code: int) -> int:
        return int(code) + 1 if 0 <= int(code) < N_STAGES else 0

    def add(self, true_code: int, scored_code: int, n: int = 1) -> None:
        """Count a pair.

        Parameters
        ----------
        true_code : int
            The true stage code 0-4 (-1 or any other code: unscored).
        scored_code : int
            The scored stage code 0-4 (-1 or any other code: unscored).
        n : int
            How many to add; ``n=-1`` takes one back.
        """
        self.counts[self._slot(true_code), self._slot(scored_code)] += n

    def agreement(self) -> Agreement | None:
        """Agreement over every pair counted.

        Returns
        -------
        Agreement or None
            As :func:`sleepnet.metrics.agreement_from_counts` gives it over the table;
            None before any pair.
        """
        return agreement_from_counts(self.counts) if self.total else None


class RecentDict(OrderedDict, Generic[K, V]):
    """A dict keeping only the ``maxlen`` most recently inserted keys.

    Setting a key already there makes it the most recent.

    Parameters
    ----------
    maxlen : int
        How many keys it keeps.
    """

    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.maxlen = int(maxlen)

    def __setitem__(self, key: K, value: V) -> None:
        if key in self:
            self.move_to_end(key)
        super().__setitem__(key, value)
        while len(self) > self.maxlen:
            self.popitem(last=False)
