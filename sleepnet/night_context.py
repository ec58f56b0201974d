"""Causal model inputs of the feature stager: one row per epoch from the epoch's own nine
base features, the four epochs before it, and what the night has shown so far.

:class:`NightContext` is the ONE place rows are built, in training, batch and live alike.
It is fed epochs in order; for each scorable epoch it returns a row of
:data:`N_INPUTS` floats:

* ``cur_*`` (9): the epoch's base features (:data:`sleepnet.features.BASE_FEATURE_NAMES`),
  or the features of another set named by the config (``feature_set``: ``scale-free``
  reads :data:`sleepnet.features.SCALE_FREE_FEATURE_NAMES`, made from the base features
  here, so every caller still feeds base features);
* ``lag{1..4}_*`` (36): the four epochs before it. After an unscored epoch, a session
  start or a restart, missing lags repeat the oldest epoch the history holds (the current
  one when it holds none), as the CNN–LSTM's window does;
* ``rel_*`` (9): the epoch's features minus the night's baseline, where the baseline of
  feature j after n scored epochs is ``(n * night_mean_j + k * pop_mean_j) / (n + k)``:
  the population mean while the night has shown little of itself, the night's own mean
  once it has shown much more than ``k`` epochs (``shrink_epochs``);
* ``hours``: hours since the session started (30 s per epoch fed, scored or not) when
  the session is known to have started at lights-off, NaN when its start is unknown
  (:data:`SESSION_STARTS`: a scorer started mid-night must not take its own start for
  the night's); and ``night_weight``: n / (n + k), how much of the baseline is the
  night's own.

The baseline itself is NOT an input: measured leave-one-subject-out on the 20 real nights,
giving it to the trees let them learn who a person is rather than what the stage is
(accuracy 0.802 / kappa 0.728 with it, 0.811 / 0.739 without).

Only scorable epochs feed the baseline and the lags; an unscored epoch clears the lags
(the signal broke) but not the baseline (the same person is still asleep). Nothing
later than the current epoch is ever used.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .features import BASE_FEATURE_NAMES, FEATURE_SETS, feature_transform
from .stages import EPOCH_S

N_BASE = len(BASE_FEATURE_NAMES)
N_LAGS = 4


def input_names(feature_names: tuple[str, ...] = BASE_FEATURE_NAMES) -> tuple[str, ...]:
    """The names of a row's inputs for features named ``feature_names``.

    Parameters
    ----------
    feature_names : tuple of str
        The per-epoch features (:data:`sleepnet.features.BASE_FEATURE_NAMES` by default).

    Returns
    -------
    tuple of str
        ``cur_<f>`` for each feature, ``lag<k>_<f>`` for k = 1-4, ``rel_<f>`` (the feature
        minus the night's baseline), then ``hours`` and ``night_weight``.
    """
    return (tuple(f"cur_{n}" for n in feature_names)
            + tuple(f"lag{k}_{n}" for k in range(1, N_LAGS + 1) for n in feature_names)
            + tuple(f"rel_{n}" for n in feature_names)
            + ("hours", "night_weight"))


INPUT_NAMES: tuple[str, ...] = input_names()
N_INPUTS = len(INPUT_NAMES)
HOURS_COLUMN = -2
"""Where ``hours`` sits in a row of any feature set (second to last)."""
STATE_VERSION = 1
LIGHTS_OFF, UNKNOWN_START = "lights-off", "unknown"
SESSION_STARTS: tuple[str, ...] = (LIGHTS_OFF, UNKNOWN_START)
"""When a session started: at lights-off (the clock since the session start is the night's
clock) or unknown (mid-night, a nap, a restart without its state: no clock)."""


def check_session_start(session_start: str) -> str:
    """``session_start`` itself when it is one of :data:`SESSION_STARTS`.

    Parameters
    ----------
    session_start : str
        ``lights-off`` or ``unknown``.

    Returns
    -------
    str
        ``session_start``, checked.

    Raises
    ------
    ValueError
        Naming ``session_start`` and the values there are.
    """
    if session_start not in SESSION_STARTS:
        raise ValueError(f"session_start={session_start!r}: use one of {', '.join(SESSION_STARTS)}")
    return session_start


@dataclass(frozen=True)
class ContextConfig:
    """How night context is formed.

    Parameters
    ----------
    pop_mean : tuple of float
        The features' population means (training nights, trimmed), in the units of the
        features (base: log V²/Hz, ratios, log V², mobility).
    shrink_epochs : float
        k of the shrunk baseline: the night's own mean counts as much as the population
        mean once the night has shown k scored epochs (k * 30 s).
    feature_set : str
        Which features rows are made of (:data:`sleepnet.features.FEATURE_SETS`):
        ``base`` (the default model's) or ``scale-free``.
    """

    pop_mean: tuple[float, ...]
    shrink_epochs: float = 40.0
    feature_set: str = "base"

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the per-epoch features of :attr:`feature_set`."""
        return FEATURE_SETS[self.feature_set]

    @property
    def input_names(self) -> tuple[str, ...]:
        """The names of a row's inputs (:func:`input_names` of :attr:`feature_names`)."""
        return input_names(self.feature_names)

    @property
    def n_inputs(self) -> int:
        """The length of a model row."""
        return len(self.input_names)

    def as_dict(self) -> dict:
        """The config as a model folder's ``config.json`` holds it.

        Returns
        -------
        dict
            ``pop_mean``, ``shrink_epochs``, ``n_lags`` and ``inputs``; ``feature_set`` when
            it is not ``base`` (folders of the base set stay as they were).
        """
        d = {"pop_mean": list(self.pop_mean), "shrink_epochs": self.shrink_epochs,
             "n_lags": N_LAGS, "inputs": list(self.input_names)}
        if self.feature_set != "base":          # folders of the base set stay as they were
            d["feature_set"] = self.feature_set
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ContextConfig:
        """The config of a model folder's ``config.json`` (:meth:`as_dict`), checked against this code.

        Parameters
        ----------
        d : dict
            ``pop_mean`` and ``shrink_epochs``; ``feature_set``, ``n_lags`` and ``inputs``
            when present must match this code's night context.

        Returns
        -------
        ContextConfig
            The config.

        Raises
        ------
        ValueError
            An unknown feature set, inputs or lags that differ from this code's, or a
            ``pop_mean`` of the wrong length.
        """
        fset = str(d.get("feature_set", "base"))
        if fset not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {fset!r} (this code reads {', '.join(FEATURE_SETS)})")
        names = input_names(FEATURE_SETS[fset])
        if int(d.get("n_lags", N_LAGS)) != N_LAGS or list(d.get("inputs", names)) != list(names):
            raise ValueError("the model's inputs differ from this code's night context")
        pop = tuple(float(v) for v in d["pop_mean"])
        if len(pop) != len(FEATURE_SETS[fset]):
            raise ValueError(f"pop_mean has {len(pop)} values, expected {len(FEATURE_SETS[fset])}")
        return cls(pop_mean=pop, shrink_epochs=float(d["shrink_epochs"]), feature_set=fset)


class NightContext:
    """Running, causal night state; turns each epoch's features into a model row.

    Parameters
    ----------
    config : ContextConfig
        Population means and shrinkage.
    clock_known : bool
        True when the session started at lights-off: ``hours`` counts from the session
        start; False: ``hours`` is NaN (the start of the night is unknown).
    """

    def __init__(self, config: ContextConfig, clock_known: bool = True) -> None:
        self.config = config
        self.clock_known = bool(clock_known)
        self._pop = np.asarray(config.pop_mean, dtype=np.float64)
        self._n = len(config.feature_names)
        self._n_inputs = config.n_inputs
        self.reset()

    def __repr__(self) -> str:
        return (f"<NightContext {self.n_scored} scored epochs, {self.n_epochs} fed, "
                f"{len(self._lags)} lags, k={self.config.shrink_epochs:g}"
                f"{'' if self.clock_known else ', no clock'}>")

    @property
    def n_lags(self) -> int:
        """Scorable epochs the lags hold (0-4)."""
        return len(self._lags)

    def reset(self) -> None:
        """Forget the night: a new session."""
        self._lags: deque[np.ndarray] = deque(maxlen=N_LAGS)
        self._sum = np.zeros(self._n)
        self.n_scored = 0
        self.n_epochs = 0

    def break_lags(self) -> None:
        """An unscored epoch or a gap: later epochs get no lags from before it."""
        self._lags.clear()

    def skip(self, n_epochs: int) -> None:
        """``n_epochs`` passed unseen (a scorer down while the night went on): the clock
        moves on and the lags break; the baseline keeps what it had.

        Parameters
        ----------
        n_epochs : int
            Epochs (30 s each) that passed; 0 or less changes nothing.
        """
        if n_epochs > 0:
            self.n_epochs += int(n_epochs)
            self._lags.clear()

    def unscored(self) -> None:
        """Feed an unscored epoch: time passes, lags break, the baseline is untouched."""
        self.n_epochs += 1
        self._lags.clear()

    def features(self, base: np.ndarray) -> np.ndarray:
        """The config's features of (n, 9) base features (the base ones as they are).

        Parameters
        ----------
        base : numpy.ndarray
            (n, 9) or (9,) base features (:data:`sleepnet.features.BASE_FEATURE_NAMES`).

        Returns
        -------
        numpy.ndarray
            (n, n_features) float64 features of the config's feature set.
        """
        return feature_transform(self.config.feature_set, np.asarray(base, dtype=np.float64).reshape(-1, N_BASE))

    def row(self, features: np.ndarray) -> np.ndarray:
        """The model row for a scorable epoch with base ``features`` (9,), then take the
        epoch into the night (lags, baseline, clock).

        Parameters
        ----------
        features : numpy.ndarray
            (9,) base features of the epoch.

        Returns
        -------
        numpy.ndarray
            (:attr:`ContextConfig.n_inputs`,) the row, laid out as :func:`input_names`.
        """
        return self._row(self.features(features)[0])

    def _row(self, f: np.ndarray) -> np.ndarray:
        k = self.config.shrink_epochs
        n = self.n_scored
        base = (self._sum + k * self._pop) / (n + k)
        lags = list(self._lags)                      # oldest first
        pad = lags[0] if lags else f
        lags = [pad] * (N_LAGS - len(lags)) + lags
        hours = self.n_epochs * EPOCH_S / 3600.0 if self.clock_known else np.nan
        out = np.concatenate([f, *lags[::-1], f - base, [hours, n / (n + k)]])
        self._lags.append(f)
        self._sum = self._sum + f
        self.n_scored += 1
        self.n_epochs += 1
        return out

    def rows_for_night(self, features: np.ndarray, scorable: np.ndarray | None = None) -> np.ndarray:
        """Rows for a whole night of (n, 9) base features fed in order (NaN rows where an
        epoch is not scorable).

        Parameters
        ----------
        features : numpy.ndarray
            (n, 9) base features, one row per 30-s epoch.
        scorable : numpy.ndarray, optional
            (n,) bool: False where an epoch is not scorable; None: every epoch is.

        Returns
        -------
        numpy.ndarray
            (n, :attr:`ContextConfig.n_inputs`) rows; all NaN for an unscorable epoch.
        """
        F = np.asarray(features, dtype=np.float64)
        ok = np.ones(len(F), dtype=bool) if scorable is None else np.asarray(scorable, dtype=bool)
        out = np.full((len(F), self._n_inputs), np.nan)
        T = self.features(F) if len(F) else np.zeros((0, self._n))
        for i in range(len(F)):
            if ok[i]:
                out[i] = self._row(T[i])
            else:
                self.unscored()
        return out

    def isolated_rows(self, features: np.ndarray) -> np.ndarray:
        """Rows for (n, 9) base features of epochs each seen alone, as a FRESH context
        would make them (no lags, population baseline, hour 0, or no hour without a
        clock); this context is left untouched.

        Parameters
        ----------
        features : numpy.ndarray
            (n, 9) base features.

        Returns
        -------
        numpy.ndarray
            (n, :attr:`ContextConfig.n_inputs`) rows.
        """
        F = self.features(features)
        pop = np.broadcast_to(self._pop, F.shape)
        zeros = np.zeros((len(F), 2))
        if not self.clock_known:
            zeros[:, 0] = np.nan
        return np.concatenate([F, F, F, F, F, F - pop, zeros], axis=1)

    # -- restart --------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to carry on after a restart, as plain JSON-able values.

        Returns
        -------
        dict
            ``version``, ``n_scored``, ``n_epochs``, the baseline's ``sum`` and the ``lags``.
        """
        return {"version": STATE_VERSION, "n_scored": self.n_scored, "n_epochs": self.n_epochs,
                "sum": [float(v) for v in self._sum], "lags": [[float(v) for v in f] for f in self._lags]}

    def restore(self, state: dict) -> None:
        """Carry on from :meth:`state` (raises ValueError on a state of another shape).

        Parameters
        ----------
        state : dict
            The :meth:`state` of a context of the same settings.

        Raises
        ------
        ValueError
            A state of another version or shape.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"night state version {state.get('version')!r}, this code reads {STATE_VERSION}")
        s = np.asarray(state["sum"], dtype=np.float64)
        lags = [np.asarray(f, dtype=np.float64) for f in state["lags"]]
        if s.shape != (self._n,) or any(f.shape != (self._n,) for f in lags) or len(lags) > N_LAGS:
            raise ValueError("night state has the wrong shape")
        self.reset()
        self._sum = s
        self._lags.extend(lags)
        self.n_scored = int(state["n_scored"])
        self.n_epochs = int(state["n_epochs"])
