"""Stage-sequence model of a night: a cycle-aware semi-Markov chain fitted to real hypnograms.

A first-order Markov chain over 30-s epochs loses the ~90-min NREM-REM cycles and the
time-of-night trends (N3 early, REM late). This model keeps them with two clocks:

* ``t``: hours since sleep onset (time-of-night bins), and
* ``c``: minutes since the current (or last) REM period began, or since sleep onset
  while no REM has happened yet (the cycle phase; "first cycle" is a separate flag). A
  REM period begins with REM after at least 15 min without REM, so REM interrupted by
  brief awakenings stays one period, and ``c`` both ends REM periods and spaces their
  onsets ~90 min apart.

A night is a sequence of *bouts* (runs of one stage). After a bout of stage ``s`` ends,
the next stage is drawn from ``P(next | s, t-bin, first-cycle, c-bin)``; each bout's
length in epochs is drawn from the real bout lengths of that stage in that time-of-night
bin. Counts are smoothed towards coarser conditionings (drop ``t``, then the first-cycle
flag, then ``c``) so that sparse cells fall back on what the data say at a coarser level.

Sleep onset latency (lights off to the first sleep epoch) and the wake after the final
awakening are log-normal, fitted to the nights whose recording starts at lights off (the
Sleep-EDF telemetry nights); the cassette nights have no lights-off time.

Data source of the fit: ``../shared/data/hypnograms`` -- 39 Sleep-EDF cassette nights
(SC4xxxE0.txt) and 12 Sleep-EDF telemetry nights (ST7xxxJx-Hypnogram.edf), PhysioNet
Sleep-EDF Expanded (ODC-By 1.0). Stages 3 and 4 are merged into N3.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.hypnograms import read_hypnogram
from ..stages import EPOCH_S, N_STAGES, UNSCORED, stage_runs

log = logging.getLogger(__name__)

W, N1, N2, N3, REM = range(5)
SLEEP_STAGES = (N1, N2, N3, REM)

#: Edges of the time-since-sleep-onset bins, hours (last bin open-ended).
T_EDGES_H: tuple[float, ...] = (0.0, 1.0, 2.0, 3.5, 5.0)
#: Edges of the cycle-phase bins, minutes since the last REM (or since onset).
C_EDGES_MIN: tuple[float, ...] = (0.0, 10.0, 20.0, 35.0, 50.0, 65.0, 80.0, 95.0)
#: REM after at least this long without REM starts a new REM period, minutes.
REM_PERIOD_GAP_MIN = 15.0
#: Wake kept before the first and after the last sleep epoch when trimming, epochs.
TRIM_WAKE_EPOCHS = 60
#: Pseudo-count pulling a sparse transition cell towards its coarser parent.
SMOOTHING = 4.0
#: Fewest bout lengths a (stage, t-bin) pool may hold before it borrows its neighbours'.
MIN_POOL = 25

_EPOCHS_PER_MIN = 60.0 / EPOCH_S


@dataclass(frozen=True)
class RealNight:
    """One real night, trimmed, with its stage codes (0..4; unscored filled).

    Parameters
    ----------
    labels : numpy.ndarray
        int8 per 30-s epoch.
    lights_off_known : bool
        True when epoch 0 is lights off (telemetry nights), so sleep onset latency and
        final wake are meaningful.
    source : str
        File name.
    """

    labels: np.ndarray
    lights_off_known: bool
    source: str


@dataclass(frozen=True)
class HypnogramModel:
    """Fitted parameters (see module docstring).

    :func:`fit_hypnogram_model` fits it to real nights; :func:`generate_bouts` draws
    simulated nights from it.

    Parameters
    ----------
    transitions : numpy.ndarray
        (5, n_t, 2, n_c, 5) probabilities of the next stage given the current stage, the
        t-bin, the first-cycle flag (1 = no REM yet) and the c-bin; the diagonal is zero.
    onset_stage : numpy.ndarray
        (5,) probabilities of the first sleep stage after the sleep-onset wake.
    bout_epochs : tuple of tuple of numpy.ndarray
        Per stage, per t-bin, the pool of real bout lengths (epochs).
    sol_log_min : tuple of float
        (mean, sd) of ln(sleep onset latency in minutes).
    final_wake_log_min : tuple of float
        (mean, sd) of ln(1 + wake after the final awakening in minutes).
    t_edges_h : tuple of float, default T_EDGES_H
        Edges of the time-since-sleep-onset bins, hours (last bin open-ended).
    c_edges_min : tuple of float, default C_EDGES_MIN
        Edges of the cycle-phase bins, minutes since the last REM period began (or since onset).
    n_nights : int, default 0
        How many real nights the model was fitted to.
    source : str, default ""
        Where the nights come from.
    """

    transitions: np.ndarray
    onset_stage: np.ndarray
    bout_epochs: tuple[tuple[np.ndarray, ...], ...]
    sol_log_min: tuple[float, float]
    final_wake_log_min: tuple[float, float]
    t_edges_h: tuple[float, ...] = T_EDGES_H
    c_edges_min: tuple[float, ...] = C_EDGES_MIN
    n_nights: int = 0
    source: str = ""

    def to_dict(self) -> dict:
        """The model as JSON-ready lists (:meth:`from_dict` reads it back).

        ``simulation_params.json`` keeps it under ``hypnogram_model``.

        Returns
        -------
        dict
            The fields by name; probabilities rounded to 5 decimals, bout pools as lists of int.
        """
        return {
            "source": self.source,
            "n_nights": self.n_nights,
            "t_edges_h": list(self.t_edges_h),
            "c_edges_min": list(self.c_edges_min),
            "transitions": np.round(self.transitions, 5).tolist(),
            "onset_stage": np.round(self.onset_stage, 5).tolist(),
            "bout_epochs": [[np.asarray(p).astype(int).tolist() for p in row] for row in self.bout_epochs],
            "sol_log_min": list(self.sol_log_min),
            "final_wake_log_min": list(self.final_wake_log_min),
        }

    @classmethod
    def from_dict(cls, d: dict) -> HypnogramModel:
        """The model from :meth:`to_dict`'s form, its probabilities renormalised.

        Parameters
        ----------
        d : dict
            The fields by name; ``n_nights`` and ``source`` may be absent.

        Returns
        -------
        HypnogramModel
            The model.
        """
        tr = np.asarray(d["transitions"], dtype=np.float64)
        tr = tr / tr.sum(axis=-1, keepdims=True)
        onset = np.asarray(d["onset_stage"], dtype=np.float64)
        return cls(
            transitions=tr,
            onset_stage=onset / onset.sum(),
            bout_epochs=tuple(tuple(np.asarray(p, dtype=np.int32) for p in row) for row in d["bout_epochs"]),
            sol_log_min=tuple(d["sol_log_min"]),
            final_wake_log_min=tuple(d["final_wake_log_min"]),
            t_edges_h=tuple(d["t_edges_h"]),
            c_edges_min=tuple(d["c_edges_min"]),
            n_nights=int(d.get("n_nights", 0)),
            source=str(d.get("source", "")),
        )


@dataclass(frozen=True)
class Bouts:
    """A generated night as bouts: stage codes and start/end times in seconds.

    Boundaries need not fall on 30-s epochs.

    Parameters
    ----------
    stages : numpy.ndarray
        (n,) int8 stage code of each bout.
    start_s : numpy.ndarray
        (n,) float64 start of each bout, s; ``start_s[0] == 0``.
    end_s : numpy.ndarray
        (n,) float64 end of each bout, s; contiguous (``end_s[i] == start_s[i+1]``).
    labels : numpy.ndarray
        (n_epochs,) int8 stage code of each 30-s epoch of the night.
    """

    stages: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    labels: np.ndarray = field(repr=False)

    @property
    def duration_s(self) -> float:
        """Length of the night, s (the end of the last bout)."""
        return float(self.end_s[-1])


# --------------------------------------------------------------------------- real data

def _fill_unscored(y: np.ndarray) -> np.ndarray:
    """Replace unscored epochs by the previous scored stage (the next at the start)."""
    y = y.copy()
    idx = np.where(y != UNSCORED, np.arange(len(y)), 0)
    np.maximum.accumulate(idx, out=idx)
    y = y[idx]
    if y[0] == UNSCORED:
        first = np.flatnonzero(y != UNSCORED)
        y[: first[0]] = y[first[0]] if len(first) else W
    return y


def trim_to_sleep(labels: np.ndarray, wake_epochs: int = TRIM_WAKE_EPOCHS) -> slice:
    """Slice keeping ``wake_epochs`` before the first and after the last sleep epoch.

    Parameters
    ----------
    labels : numpy.ndarray
        Stage codes per 30-s epoch (N1..REM are sleep).
    wake_epochs : int, default TRIM_WAKE_EPOCHS
        Epochs kept on each side of the sleep (60: 30 min).

    Returns
    -------
    slice
        The kept epochs; empty (``slice(0, 0)``) when the night has no sleep.
    """
    sleep = np.flatnonzero((labels >= N1) & (labels <= REM))
    if len(sleep) == 0:
        return slice(0, 0)
    return slice(max(0, int(sleep[0]) - wake_epochs), min(len(labels), int(sleep[-1]) + 1 + wake_epochs))


def load_real_nights(root: Path) -> list[RealNight]:
    """The real hypnograms under ``root`` (``.../shared/data/hypnograms``), trimmed.

    Cassette nights (about 20 h, mostly wake) are cut to 30 min of wake around sleep;
    telemetry nights start at lights off and are kept from their first epoch to 30 min
    after the last sleep epoch (those that open with unscored epochs have no lights-off
    time and are trimmed like the cassette nights).

    Parameters
    ----------
    root : Path
        The hypnogram folder, holding ``sleep-edf-sc/SC*.txt`` and
        ``sleep-edf-st/ST*-Hypnogram.edf``.

    Returns
    -------
    list of RealNight
        The nights with any sleep, cassette nights first, each by file name; unscored
        epochs filled with the previous scored stage.
    """
    root = Path(root)
    nights: list[RealNight] = []
    for path in sorted((root / "sleep-edf-sc").glob("SC*.txt")):
        y = read_hypnogram(path)
        sl = trim_to_sleep(y)
        if sl.stop > sl.start:
            nights.append(RealNight(_fill_unscored(y[sl]), False, path.name))
    for path in sorted((root / "sleep-edf-st").glob("ST*-Hypnogram.edf")):
        y = read_hypnogram(path)
        sl = trim_to_sleep(y)
        if sl.stop <= sl.start:
            continue
        # A night that opens with more than a minute unscored has no usable lights-off
        # time; one or two leading unscored epochs are dropped.
        lead = int(np.argmax(y != UNSCORED))
        known = lead <= 2
        nights.append(RealNight(_fill_unscored(y[lead: sl.stop] if known else y[sl]),
                                known, path.name))
    return nights


# --------------------------------------------------------------------------- fitting

def _bin(value: float, edges: tuple[float, ...]) -> int:
    return int(np.searchsorted(np.asarray(edges), value, side="right") - 1)


def _sleep_period_bouts(y: np.ndarray):
    """(stage, length, next_stage, t_h, first_cycle, c_min, t0_h) for the bouts of the
    sleep period (first to last sleep epoch), with the clocks at each bout's END (and
    t0_h, hours since onset, at its start)."""
    sleep = np.flatnonzero(y >= N1)
    onset, last = int(sleep[0]), int(sleep[-1])
    st, starts, lengths = stage_runs(y[onset: last + 1])
    clock = _CycleClock()
    out = []
    for i in range(len(st)):
        end = starts[i] + lengths[i]
        if st[i] == REM:
            clock.rem(starts[i], end)
        if i + 1 < len(st):
            t_h = end / _EPOCHS_PER_MIN / 60.0
            # The clocks at the bout's START pick its length pool.
            out.append((int(st[i]), int(lengths[i]), int(st[i + 1]), t_h, clock.first, clock.c_min(end),
                        starts[i] / _EPOCHS_PER_MIN / 60.0))
        else:
            out.append((int(st[i]), int(lengths[i]), -1, 0.0, False, 0.0, starts[i] / _EPOCHS_PER_MIN / 60.0))
    return out


class _CycleClock:
    """The cycle phase: epochs since the current REM period began (or since sleep onset,
    counted from epoch 0 of the sleep period, while no REM has come)."""

    def __init__(self, origin: int = 0) -> None:
        self.origin = origin
        self.period_start: int | None = None
        self.last_rem_end: int | None = None

    @property
    def first(self) -> bool:
        return self.period_start is None

    def rem(self, start: int, end: int) -> None:
        gap = REM_PERIOD_GAP_MIN * _EPOCHS_PER_MIN
        if self.last_rem_end is None or start - self.last_rem_end >= gap:
            self.period_start = start
        self.last_rem_end = end

    def c_min(self, pos: int) -> float:
        return (pos - (self.origin if self.period_start is None else self.period_start)) / _EPOCHS_PER_MIN


def fit_hypnogram_model(nights: list[RealNight], source: str = "") -> HypnogramModel:
    """Fit the cycle-aware semi-Markov model to real nights (see module docstring).

    Parameters
    ----------
    nights : list of RealNight
        The real nights (:func:`load_real_nights`); those without sleep are skipped.
        Only those with ``lights_off_known`` inform the sleep-onset latency and final wake.
    source : str, default ""
        Where the nights come from, kept in the model.

    Returns
    -------
    HypnogramModel
        The fitted model.
    """
    n_t, n_c = len(T_EDGES_H), len(C_EDGES_MIN)
    counts = np.zeros((N_STAGES, n_t, 2, n_c, N_STAGES))
    pools: list[list[list[int]]] = [[[] for _ in range(n_t)] for _ in range(N_STAGES)]
    onset = np.zeros(N_STAGES)
    sol, final = [], []
    for night in nights:
        y = night.labels
        sleep = np.flatnonzero(y >= N1)
        if len(sleep) == 0:
            continue
        onset[y[sleep[0]]] += 1
        if night.lights_off_known:
            sol.append(max(sleep[0], 1) / _EPOCHS_PER_MIN)
            final.append((len(y) - 1 - sleep[-1]) / _EPOCHS_PER_MIN)
        for s, length, nxt, t_h, first, c_min, t0_h in _sleep_period_bouts(y):
            pools[s][_bin(t0_h, T_EDGES_H)].append(length)
            if nxt >= 0:
                counts[s, _bin(t_h, T_EDGES_H), int(first), _bin(c_min, C_EDGES_MIN), nxt] += 1
    # Hierarchical smoothing: (s) <- (s, c) <- (s, first, c) <- (s, t, first, c).
    p_s = counts.sum(axis=(1, 2, 3)) + 0.5
    np.fill_diagonal(p_s, 0.0)
    p_s /= p_s.sum(axis=-1, keepdims=True)
    c_sc = counts.sum(axis=(1, 2))  # (s, c, next)
    p_sc = (c_sc + SMOOTHING * p_s[:, None, :]) / (c_sc.sum(-1, keepdims=True) + SMOOTHING)
    c_sfc = counts.sum(axis=1)  # (s, first, c, next)
    p_sfc = (c_sfc + SMOOTHING * p_sc[:, None]) / (c_sfc.sum(-1, keepdims=True) + SMOOTHING)
    p = (counts + SMOOTHING * p_sfc[:, None]) / (counts.sum(-1, keepdims=True) + SMOOTHING)
    for s in range(N_STAGES):
        p[s, ..., s] = 0.0
    p /= p.sum(axis=-1, keepdims=True)

    bout_pools = []
    for s in range(N_STAGES):
        row = []
        allp = [x for b in pools[s] for x in b]
        for tb in range(n_t):
            pool = list(pools[s][tb])
            k = 1
            while len(pool) < MIN_POOL and k < n_t:
                for nb in (tb - k, tb + k):
                    if 0 <= nb < n_t:
                        pool += pools[s][nb]
                k += 1
            row.append(np.asarray(pool if pool else (allp or [1]), dtype=np.int32))
        bout_pools.append(tuple(row))
    onset[W] = 0.0
    sol_arr = np.log(np.asarray(sol or [15.0]))
    fin_arr = np.log1p(np.asarray(final or [10.0]))
    return HypnogramModel(
        transitions=p,
        onset_stage=(onset + 0.5 * (np.arange(N_STAGES) > 0)) / (onset.sum() + 2.0),
        bout_epochs=tuple(bout_pools),
        sol_log_min=(float(sol_arr.mean()), float(sol_arr.std(ddof=1)) if len(sol_arr) > 1 else 0.4),
        final_wake_log_min=(float(fin_arr.mean()), float(fin_arr.std(ddof=1)) if len(fin_arr) > 1 else 0.8),
        n_nights=len(nights),
        source=source,
    )


# --------------------------------------------------------------------------- generation

def generate_epochs(model: HypnogramModel, hours: float, rng: np.random.Generator) -> np.ndarray:
    """Stage codes per 30-s epoch for a night of ``hours`` in bed from lights off.

    Parameters
    ----------
    model : HypnogramModel
        The fitted model.
    hours : float
        Time in bed, h (at least one epoch).
    rng : numpy.random.Generator
        The source of randomness.

    Returns
    -------
    numpy.ndarray
        (n_epochs,) int8 stage codes: wake, then sleep from the drawn onset latency to
        the drawn final awakening, then wake (all wake when no room for sleep is left).
    """
    n_epochs = max(int(round(hours * 3600.0 / EPOCH_S)), 1)
    sol = int(round(np.exp(rng.normal(*model.sol_log_min)) * _EPOCHS_PER_MIN))
    sol = max(sol, 1)
    final = int(round(np.expm1(max(rng.normal(*model.final_wake_log_min), 0.0)) * _EPOCHS_PER_MIN))
    y = np.full(n_epochs, W, dtype=np.int8)
    sleep_end = n_epochs - final
    if sleep_end - sol < 2:
        return y
    pos = sol
    stage = int(rng.choice(N_STAGES, p=model.onset_stage))
    clock = _CycleClock(origin=sol)
    n_t, n_c = len(model.t_edges_h), len(model.c_edges_min)
    while pos < sleep_end:
        t0_h = (pos - sol) / _EPOCHS_PER_MIN / 60.0
        pool = model.bout_epochs[stage][min(_bin(t0_h, model.t_edges_h), n_t - 1)]
        length = int(pool[rng.integers(len(pool))])
        end = min(pos + length, sleep_end)
        y[pos:end] = stage
        if stage == REM:
            clock.rem(pos, end)
        pos = end
        t_h = (pos - sol) / _EPOCHS_PER_MIN / 60.0
        probs = model.transitions[stage, min(_bin(t_h, model.t_edges_h), n_t - 1), int(clock.first),
                                  min(_bin(clock.c_min(pos), model.c_edges_min), n_c - 1)]
        stage = int(rng.choice(N_STAGES, p=probs))
    # A night ends on wake: if the last sleep bout was cut, the final wake starts there.
    return y


def epochs_to_bouts(labels: np.ndarray, rng: np.random.Generator, max_shift_s: float = 12.0) -> Bouts:
    """Bouts whose boundaries are moved off the 30-s grid, keeping every epoch's label.

    Each boundary moves by up to ``max_shift_s`` and by at most a quarter of the shorter
    bout beside it, so the stage covering most of each epoch is still the epoch's label.

    Parameters
    ----------
    labels : numpy.ndarray
        (n_epochs,) stage codes per 30-s epoch.
    rng : numpy.random.Generator
        The source of randomness (the shifts).
    max_shift_s : float, default 12.0
        Largest shift of a boundary, s.

    Returns
    -------
    Bouts
        The bouts, with ``labels`` kept as int8.
    """
    labels = np.asarray(labels, dtype=np.int8)
    st, starts, lengths = stage_runs(labels)
    bounds = starts[1:].astype(np.float64) * EPOCH_S
    if len(bounds):
        shorter = np.minimum(lengths[:-1], lengths[1:]) * EPOCH_S
        lim = np.minimum(max_shift_s, 0.25 * shorter)
        bounds = bounds + rng.uniform(-1.0, 1.0, len(bounds)) * lim
    start_s = np.concatenate([[0.0], bounds])
    end_s = np.concatenate([bounds, [len(labels) * EPOCH_S]])
    return Bouts(stages=st.astype(np.int8), start_s=start_s, end_s=end_s, labels=labels)


def generate_bouts(model: HypnogramModel, hours: float, rng: np.random.Generator) -> Bouts:
    """A night of ``hours`` in bed as bouts with off-grid boundaries.

    :func:`generate_epochs` then :func:`epochs_to_bouts`, with the same ``rng``.

    Parameters
    ----------
    model : HypnogramModel
        The fitted model.
    hours : float
        Time in bed, h.
    rng : numpy.random.Generator
        The source of randomness.

    Returns
    -------
    Bouts
        The night.
    """
    return epochs_to_bouts(generate_epochs(model, hours, rng), rng)


# --------------------------------------------------------------------------- statistics

HYPNOGRAM_STAT_NAMES: tuple[str, ...] = (
    "pct_N1", "pct_N2", "pct_N3", "pct_REM", "pct_W_sleep_period",
    "sleep_onset_latency_min", "rem_latency_min", "transitions_per_hour",
    "bout_W_min", "bout_N1_min", "bout_N2_min", "bout_N3_min", "bout_REM_min",
    "n3_first_third", "rem_last_third", "total_sleep_time_h",
)


def hypnogram_statistics(labels: np.ndarray, lights_off_known: bool = True) -> dict[str, float]:
    """Sleep statistics of one night (stage codes per 30-s epoch, from lights off).

    Percentages are of total sleep time; latencies in minutes (REM latency from sleep
    onset); transitions per hour of the sleep period (first to last sleep epoch);
    mean bout lengths in minutes within the sleep period; ``n3_first_third`` is the
    share of N3 epochs in the first third of the sleep period, ``rem_last_third`` that
    of REM in its last third. Sleep onset latency is NaN unless ``lights_off_known``.

    Parameters
    ----------
    labels : numpy.ndarray
        Stage codes per 30-s epoch, from lights off.
    lights_off_known : bool, default True
        Whether epoch 0 is lights off.

    Returns
    -------
    dict of str to float
        One value per name of :data:`HYPNOGRAM_STAT_NAMES`; NaN where undefined (all NaN
        for a night without sleep).
    """
    y = np.asarray(labels)
    sleep = np.flatnonzero((y >= N1) & (y <= REM))
    nan = float("nan")
    if len(sleep) == 0:
        return {k: nan for k in HYPNOGRAM_STAT_NAMES}
    onset, last = int(sleep[0]), int(sleep[-1])
    sp = y[onset: last + 1]
    tst = float(np.isin(sp, SLEEP_STAGES).sum())
    out: dict[str, float] = {}
    for s, name in zip(SLEEP_STAGES, ("N1", "N2", "N3", "REM")):
        out[f"pct_{name}"] = 100.0 * float((sp == s).sum()) / tst
    out["pct_W_sleep_period"] = 100.0 * float((sp == W).sum()) / len(sp)
    out["sleep_onset_latency_min"] = onset / _EPOCHS_PER_MIN if lights_off_known else nan
    rem = np.flatnonzero(sp == REM)
    out["rem_latency_min"] = rem[0] / _EPOCHS_PER_MIN if len(rem) else nan
    st, _, lengths = stage_runs(sp)
    out["transitions_per_hour"] = (len(st) - 1) / (len(sp) / _EPOCHS_PER_MIN / 60.0)
    for s, name in enumerate(("W", "N1", "N2", "N3", "REM")):
        m = st == s
        out[f"bout_{name}_min"] = float(lengths[m].mean()) / _EPOCHS_PER_MIN if m.any() else nan
    third = len(sp) / 3.0
    idx = np.arange(len(sp))
    n3 = sp == N3
    out["n3_first_third"] = float(n3[idx < third].sum() / n3.sum()) if n3.any() else nan
    r = sp == REM
    out["rem_last_third"] = float(r[idx >= 2 * third].sum() / r.sum()) if r.any() else nan
    out["total_sleep_time_h"] = tst / _EPOCHS_PER_MIN / 60.0
    return out
