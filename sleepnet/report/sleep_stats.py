"""Sleep statistics of a hypnogram, with the names and definitions sleep researchers use.

The input is one stage code per 30-s epoch (0=W, 1=N1, 2=N2, 3=N3, 4=REM, -1 unscored),
taken to cover the time in bed (lights off to lights on; for a live night: from the
scorer's start to now). The reference is yasa's ``sleep_statistics`` (YASA >= 0.5, which
follows the AASM manual); where we differ, it is said below.

Definitions (durations in minutes, efficiencies and shares in %)
-----------------------------------------------------------------
TIB
    Time in bed: the whole hypnogram, unscored epochs included.
SOL
    Sleep onset latency: from the start to the first epoch of any sleep stage (N1, N2,
    N3 or REM). NaN when there is no sleep. 0 when the first epoch is sleep.
SPT
    Sleep period time: from the first to the last sleep epoch, both included.
    0 when there is no sleep.
WASO
    Wake after sleep onset: wake epochs inside SPT. Wake after the last sleep epoch is
    not WASO (so, live, a current awakening counts once sleep resumes).
TST
    Total sleep time: N1 + N2 + N3 + REM epochs (all of them lie inside SPT).
    Unscored epochs are neither sleep nor wake: they count in TIB and SPT only (as in
    yasa >= 0.5), so SPT = TST + WASO + unscored minutes inside SPT.
SE
    Sleep efficiency: TST / TIB * 100. NaN when TIB is 0.
SME
    Sleep maintenance efficiency: TST / SPT * 100. NaN when there is no sleep.
Lat_N1, Lat_N2, Lat_N3, Lat_REM
    Latency of each sleep stage FROM SLEEP ONSET (the AASM definition of REM latency):
    first epoch of that stage minus the sleep-onset epoch. NaN when the stage never
    occurs. yasa reports latencies from the start of the record instead; its
    ``Lat_REM`` equals our ``SOL + Lat_REM``.
W, N1, N2, N3, REM, NREM, UNS
    Minutes in each stage over the whole hypnogram (NREM = N1 + N2 + N3; UNS is unscored).
%N1, %N2, %N3, %REM, %NREM
    Minutes in the stage as a share of TST. NaN when TST is 0.
N_awakenings
    Number of awakenings: runs of consecutive wake epochs inside SPT (unscored epochs
    neither start nor end a run, so W ? W is one awakening). Every run counts, even a
    single 30-s epoch.

:class:`RunningSleepStats` gives the same numbers epoch by epoch in O(1) per epoch:
after pushing epochs ``codes[:i+1]`` its :meth:`RunningSleepStats.stats` equals
``sleep_statistics(codes[:i+1])``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..stages import EPOCH_S, N_STAGES, STAGES, UNSCORED

_W, _N1, _N2, _N3, _REM = range(N_STAGES)
_NAN = float("nan")

#: Keys of :meth:`SleepStats.as_dict`, in display order, with their units.
STAT_UNITS: dict[str, str] = {
    "TIB": "min", "SPT": "min", "TST": "min", "WASO": "min", "SOL": "min",
    "SE": "%", "SME": "%",
    "Lat_N1": "min", "Lat_N2": "min", "Lat_N3": "min", "Lat_REM": "min",
    "W": "min", "N1": "min", "N2": "min", "N3": "min", "REM": "min", "NREM": "min", "UNS": "min",
    "%N1": "%", "%N2": "%", "%N3": "%", "%REM": "%", "%NREM": "%",
    "N_awakenings": "count",
}

#: One-line definitions, written next to the numbers in the report's JSON.
STAT_DEFINITIONS: dict[str, str] = {
    "TIB": "time in bed: the whole hypnogram, unscored epochs included",
    "SPT": "sleep period time: first to last sleep epoch, both included",
    "TST": "total sleep time: N1+N2+N3+REM",
    "WASO": "wake after sleep onset: wake inside SPT",
    "SOL": "sleep onset latency: start to the first epoch of any sleep stage",
    "SE": "sleep efficiency: TST / TIB * 100",
    "SME": "sleep maintenance efficiency: TST / SPT * 100",
    "Lat_N1": "N1 latency from sleep onset",
    "Lat_N2": "N2 latency from sleep onset",
    "Lat_N3": "N3 latency from sleep onset",
    "Lat_REM": "REM latency from sleep onset (AASM; yasa's Lat_REM is SOL + this)",
    "W": "minutes of wake over the whole hypnogram",
    "N1": "minutes of N1", "N2": "minutes of N2", "N3": "minutes of N3", "REM": "minutes of REM",
    "NREM": "minutes of N1+N2+N3",
    "UNS": "minutes unscored (gaps, flat or artefacted signal, scorer not running)",
    "%N1": "N1 as % of TST", "%N2": "N2 as % of TST", "%N3": "N3 as % of TST",
    "%REM": "REM as % of TST", "%NREM": "NREM as % of TST",
    "N_awakenings": "runs of wake epochs inside SPT",
}


@dataclass(frozen=True)
class SleepStats:
    """Sleep statistics of one hypnogram (see the module docstring for definitions).

    Durations and latencies are in minutes, SE/SME and ``pct_*`` in % (NaN where the
    definition has no value).

    Parameters
    ----------
    n_epochs : int
        Epochs in the hypnogram, unscored included.
    epoch_s : float
        Epoch length, s.
    tib_min : float
        Time in bed, min.
    spt_min : float
        Sleep period time, min (0 without sleep).
    tst_min : float
        Total sleep time, min.
    waso_min : float
        Wake after sleep onset, min.
    sol_min : float
        Sleep onset latency, min (NaN without sleep).
    se_pct : float
        Sleep efficiency, % (NaN when TIB is 0).
    sme_pct : float
        Sleep maintenance efficiency, % (NaN without sleep).
    latency_min : dict of str to float
        N1, N2, N3, REM: latency from sleep onset, min (NaN when the stage never occurs).
    minutes : dict of str to float
        W, N1, N2, N3, REM, UNS: minutes in each over the whole hypnogram.
    pct_tst : dict of str to float
        N1, N2, N3, REM, NREM: share of TST, % (NaN when TST is 0).
    n_awakenings : int
        Runs of wake epochs inside SPT.
    sleep_onset_epoch : int or None
        0-based index of the first sleep epoch, None without sleep.
    last_sleep_epoch : int or None
        0-based index of the last sleep epoch, None without sleep.
    """

    n_epochs: int
    epoch_s: float
    tib_min: float
    spt_min: float
    tst_min: float
    waso_min: float
    sol_min: float
    se_pct: float
    sme_pct: float
    latency_min: dict[str, float]       # N1, N2, N3, REM: from sleep onset
    minutes: dict[str, float]           # W, N1, N2, N3, REM, UNS
    pct_tst: dict[str, float]           # N1, N2, N3, REM, NREM
    n_awakenings: int
    sleep_onset_epoch: int | None
    last_sleep_epoch: int | None

    @property
    def rem_latency_min(self) -> float:
        """REM latency from sleep onset, min (NaN without REM)."""
        return self.latency_min["REM"]

    @property
    def nrem_min(self) -> float:
        """Minutes of N1 + N2 + N3."""
        return self.minutes["N1"] + self.minutes["N2"] + self.minutes["N3"]

    @property
    def has_sleep(self) -> bool:
        """True when the hypnogram holds any sleep epoch."""
        return self.sleep_onset_epoch is not None

    def as_dict(self) -> dict[str, float | int]:
        """The statistics under yasa-style keys; NaN stays NaN.

        Returns
        -------
        dict of str to float or int
            One value per key of :data:`STAT_UNITS`, in its order.
        """
        d: dict[str, float | int] = {
            "TIB": self.tib_min, "SPT": self.spt_min, "TST": self.tst_min, "WASO": self.waso_min,
            "SOL": self.sol_min, "SE": self.se_pct, "SME": self.sme_pct,
        }
        d.update({f"Lat_{s}": self.latency_min[s] for s in STAGES[1:]})
        d.update({s: self.minutes[s] for s in STAGES})
        d["NREM"] = self.nrem_min
        d["UNS"] = self.minutes["UNS"]
        d.update({f"%{s}": self.pct_tst[s] for s in (*STAGES[1:], "NREM")})
        d["N_awakenings"] = self.n_awakenings
        return d


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else _NAN


def _make(n: int, counts: list[int], first: int | None, last: int | None, waso: int,
          first_of: list[int | None], awakenings: int, epoch_s: float) -> SleepStats:
    """Assemble :class:`SleepStats` from epoch counts (shared by batch and running)."""
    to_min = epoch_s / 60.0
    tst = sum(counts[_N1:])
    spt = (last - first + 1) if first is not None and last is not None else 0
    tib_min, tst_min, spt_min = n * to_min, tst * to_min, spt * to_min
    lat = {s: ((first_of[k] - first) * to_min if first is not None and first_of[k] is not None else _NAN)
           for k, s in enumerate(STAGES) if k != _W}
    minutes = {s: counts[k] * to_min for k, s in enumerate(STAGES)}
    minutes["UNS"] = (n - sum(counts)) * to_min
    nrem = counts[_N1] + counts[_N2] + counts[_N3]
    pct = {s: _pct(counts[k], tst) for k, s in enumerate(STAGES) if k != _W}
    pct["NREM"] = _pct(nrem, tst)
    return SleepStats(
        n_epochs=n, epoch_s=epoch_s, tib_min=tib_min, spt_min=spt_min, tst_min=tst_min,
        waso_min=waso * to_min, sol_min=first * to_min if first is not None else _NAN,
        se_pct=_pct(tst, n), sme_pct=_pct(tst, spt) if spt else _NAN,
        latency_min=lat, minutes=minutes, pct_tst=pct, n_awakenings=awakenings,
        sleep_onset_epoch=first, last_sleep_epoch=last,
    )


def _as_codes(codes) -> np.ndarray:
    c = np.asarray(codes)
    if c.ndim != 1:
        raise ValueError(f"a hypnogram is one stage code per epoch, got shape {c.shape}")
    c = c.astype(np.int64)
    return np.where((c >= 0) & (c < N_STAGES), c, UNSCORED)


def sleep_statistics(codes, epoch_s: float = EPOCH_S) -> SleepStats:
    """Sleep statistics of a hypnogram.

    Parameters
    ----------
    codes : array_like of int, shape (n_epochs,)
        Stage codes per epoch: 0=W, 1=N1, 2=N2, 3=N3, 4=REM; any other value (-1) is
        unscored.
    epoch_s : float
        Epoch length in seconds (30).

    Returns
    -------
    SleepStats
        Durations in minutes, SE/SME and stage shares in % (definitions in the module
        docstring).
    """
    c = _as_codes(codes)
    n = len(c)
    counts = [int(np.count_nonzero(c == k)) for k in range(N_STAGES)]
    sleep_idx = np.flatnonzero(c > _W)
    first_of = [int(np.argmax(c == k)) if counts[k] else None for k in range(N_STAGES)]
    if len(sleep_idx) == 0:
        return _make(n, counts, None, None, 0, first_of, 0, epoch_s)
    first, last = int(sleep_idx[0]), int(sleep_idx[-1])
    spt = c[first:last + 1]
    waso = int(np.count_nonzero(spt == _W))
    scored = spt[spt >= 0]                      # unscored epochs neither start nor end a run
    is_w = scored == _W
    awakenings = int(np.count_nonzero(is_w[1:] & ~is_w[:-1])) if len(is_w) > 1 else 0
    return _make(n, counts, first, last, waso, first_of, awakenings, epoch_s)


class RunningSleepStats:
    """Sleep statistics updated one epoch at a time (O(1) per epoch, no history kept).

    ``push(code)`` for each new epoch in order; ``stats()`` equals
    :func:`sleep_statistics` of everything pushed so far.

    Parameters
    ----------
    epoch_s : float, default EPOCH_S
        Epoch length, s.
    """

    def __init__(self, epoch_s: float = EPOCH_S) -> None:
        self.epoch_s = epoch_s
        self._n = 0
        self._counts = [0] * N_STAGES
        self._first_of: list[int | None] = [None] * N_STAGES
        self._first: int | None = None
        self._last: int | None = None
        self._waso = 0
        self._awakenings = 0
        self._pending_wake = 0        # wake epochs since the last sleep epoch
        self._pending_bout = False    # a wake run has started since the last sleep epoch

    @property
    def n_epochs(self) -> int:
        """Epochs pushed so far, unscored included."""
        return self._n

    def push(self, code: int) -> None:
        """Add the next epoch's stage code.

        Epochs come in recording order; an unscored one still counts in :attr:`n_epochs`.

        Parameters
        ----------
        code : int
            0=W, 1=N1, 2=N2, 3=N3, 4=REM; anything else is unscored.
        """
        code = int(code)
        i = self._n
        self._n += 1
        if not 0 <= code < N_STAGES:
            return
        self._counts[code] += 1
        if self._first_of[code] is None:
            self._first_of[code] = i
        if code == _W:
            if self._first is not None:
                self._pending_wake += 1
                self._pending_bout = True
            return
        if self._first is None:
            self._first = i
        self._last = i
        self._waso += self._pending_wake
        self._awakenings += int(self._pending_bout)
        self._pending_wake = 0
        self._pending_bout = False

    def extend(self, codes) -> None:
        """Add several epochs' stage codes, in order (:meth:`push` each).

        Parameters
        ----------
        codes : array_like of int
            Stage codes, flattened.
        """
        for c in np.asarray(codes).reshape(-1):
            self.push(int(c))

    def stats(self) -> SleepStats:
        """The statistics of everything pushed so far.

        Returns
        -------
        SleepStats
            Equal to :func:`sleep_statistics` of the pushed codes.
        """
        return _make(self._n, list(self._counts), self._first, self._last, self._waso,
                     list(self._first_of), self._awakenings, self.epoch_s)


def format_minutes(minutes: float) -> str:
    """A duration for people: '—' for NaN, '45.5 min' under an hour, '7 h 05 min' above.

    Parameters
    ----------
    minutes : float
        The duration, min (None or NaN: unknown).

    Returns
    -------
    str
        The text.
    """
    if minutes is None or (isinstance(minutes, float) and math.isnan(minutes)):
        return "—"
    if minutes < 60:
        return f"{minutes:.1f} min"
    h, m = divmod(int(round(minutes)), 60)
    return f"{h} h {m:02d} min"
