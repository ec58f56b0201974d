"""Labelled nights as per-epoch features: the one reader of the shared feature files.

The shared Sleep-EDF feature files are npz with ``X`` (n_epochs, 72), whose first nine
columns are the Fpz-Cz base features (:data:`sleepnet.features.BASE_FEATURE_NAMES`), and
``y`` (n_epochs,) with stage codes 0-4 (W, N1, N2, N3, REM) and -1 for unscored epochs.
Training (:mod:`sleepnet.train.feature_training`), the simulator's calibration
(:mod:`sleepnet.sim.calibrate`), the gate's evaluation and the benchmarks read them here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..night_context import N_BASE


@dataclass(frozen=True, repr=False)
class FeatureNight:
    """One labelled night as per-epoch base features.

    Parameters
    ----------
    name : str
        e.g. ``SC4011E0``.
    subject : str
        Subject key for subject-wise splits (``01`` for SC4011E0).
    features : numpy.ndarray
        (n_epochs, 9) base features (:data:`sleepnet.features.BASE_FEATURE_NAMES`).
    labels : numpy.ndarray
        (n_epochs,) 0-4, -1 unscored.
    scorable : numpy.ndarray
        (n_epochs,) bool: False where the signal could not be scored (gap, flat...).
    """

    name: str
    subject: str
    features: np.ndarray
    labels: np.ndarray
    scorable: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.scorable is None:
            object.__setattr__(self, "scorable", np.ones(len(self.labels), dtype=bool))

    def __repr__(self) -> str:
        return f"<FeatureNight {self.name} subject {self.subject}: {len(self.labels)} epochs>"


def subject_of(name: str) -> str:
    """Sleep-EDF subject number of a night name (``SC4011E0`` -> ``01``), else the name.

    Parameters
    ----------
    name : str
        A night's name, e.g. ``SC4011E0`` or ``ST7022J0``.

    Returns
    -------
    str
        The two-digit subject number of a Sleep-EDF name; any other name unchanged.
    """
    m = re.match(r"S[CT]\d(\d\d)\d", name)
    return m.group(1) if m else name


def read_feature_night(path: str | Path) -> FeatureNight:
    """One npz of the shared feature format; one-line :class:`InputFileError` when it does not fit.

    Parameters
    ----------
    path : str or pathlib.Path
        An npz with ``X`` (n_epochs, 72; the first nine columns are read) and ``y``
        (n_epochs,; 0-4, -1 unscored). The file's stem names the night.

    Returns
    -------
    FeatureNight
        The night's base features (float64), labels (int64) and subject
        (:func:`subject_of` of its name); every epoch scorable.

    Raises
    ------
    sleepnet.errors.InputFileError
        The file is not a readable npz, lacks ``X`` or ``y``, has shapes that do not match,
        non-numeric or non-finite base features, labels outside 0-4 and -1, or no scored epoch.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as d:
            if "X" not in d or "y" not in d:
                raise InputFileError(f"{p}: needs arrays 'X' (n_epochs, 72) and 'y' (n_epochs,); has {sorted(d.files)}")
            X, y = np.asarray(d["X"]), np.asarray(d["y"])
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(f"{p}: not a readable npz ({exc.__class__.__name__})") from None
    if X.ndim != 2 or X.shape[1] < N_BASE or y.ndim != 1 or len(y) != len(X):
        raise InputFileError(f"{p}: X has shape {X.shape} and y {y.shape}; expected X (n_epochs, 72) "
                             f"(first {N_BASE} columns: Fpz-Cz base features) and y (n_epochs,)")
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X[:, :N_BASE]).all():
        raise InputFileError(f"{p}: X holds non-numeric or non-finite feature values")
    y = y.astype(np.int64)
    if np.any((y < -1) | (y > 4)):
        raise InputFileError(f"{p}: y holds values outside 0-4 (W, N1, N2, N3, REM) and -1 (unscored)")
    if not np.any(y >= 0):
        raise InputFileError(f"{p}: no scored epoch in y")
    return FeatureNight(p.stem, subject_of(p.stem), X[:, :N_BASE].astype(np.float64), y)


def read_feature_folder(folder: str | Path) -> list[FeatureNight]:
    """Every ``*.npz`` of ``folder`` (sorted by name); one-line errors for a bad folder or file.

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder of npz feature nights (:func:`read_feature_night`).

    Returns
    -------
    list of FeatureNight
        One per file, in file-name order.

    Raises
    ------
    sleepnet.errors.InputFileError
        ``folder`` is not a folder, holds no ``.npz``, or one of its files does not fit.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputFileError(f"{d}: no such folder of feature nights")
    paths = sorted(d.glob("*.npz"))
    if not paths:
        raise InputFileError(f"{d}: no .npz feature nights in it")
    return [read_feature_night(p) for p in paths]
