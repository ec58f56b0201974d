"""Agreement between predicted and true stages: accuracy, macro-F1, Cohen's kappa,
per-class precision/recall/F1 and the confusion matrix. Unscored epochs (-1 on either
side) are excluded and counted."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .stages import N_STAGES, STAGES


@dataclass(frozen=True)
class Agreement:
    """Agreement between predicted and true stages over the epochs both score.

    Parameters
    ----------
    n_epochs : int
        Epochs compared.
    n_excluded : int
        Epochs left out because either side is unscored.
    accuracy : float
        Share of compared epochs that agree, 0-1 (NaN when none is compared).
    macro_f1 : float
        Mean F1 over the stages present in the truth (NaN when none is).
    kappa : float
        Cohen's kappa (NaN when no epoch is compared; 1.0 when chance agreement is 1).
    precision : dict of str to float
        Per stage W..REM (0 when the stage is never predicted).
    recall : dict of str to float
        Per stage W..REM (0 when the stage is never true).
    f1 : dict of str to float
        Per stage W..REM.
    support : dict of str to int
        True epochs of each stage among those compared.
    confusion : list of list of int
        Rows: true W..REM, columns: predicted W..REM.
    """

    n_epochs: int            # epochs compared
    n_excluded: int          # epochs left out because either side is unscored
    accuracy: float
    macro_f1: float
    kappa: float
    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    support: dict[str, int]
    confusion: list[list[int]]  # rows: true W..REM, columns: predicted W..REM

    def as_dict(self) -> dict:
        """The agreement as a JSON-ready dict.

        Returns
        -------
        dict
            Every field by name.
        """
        return asdict(self)


def pair_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(N_STAGES + 1, N_STAGES + 1) counts of (true, predicted) pairs; row and column 0
    count unscored codes (anything outside 0..4), 1..5 the stages W..REM. A running sum
    of these is all :func:`agreement_from_counts` needs, so a long live session can
    report its agreement without keeping its pairs.

    Parameters
    ----------
    y_true : numpy.ndarray
        True stage codes per epoch.
    y_pred : numpy.ndarray
        Predicted stage codes per epoch; only the first ``min(len(y_true), len(y_pred))``
        epochs of either are counted.

    Returns
    -------
    numpy.ndarray
        (N_STAGES + 1, N_STAGES + 1) int64 counts.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = min(len(y_true), len(y_pred))
    t = np.where((y_true[:n] >= 0) & (y_true[:n] < N_STAGES), y_true[:n] + 1, 0)
    p = np.where((y_pred[:n] >= 0) & (y_pred[:n] < N_STAGES), y_pred[:n] + 1, 0)
    counts = np.zeros((N_STAGES + 1, N_STAGES + 1), dtype=np.int64)
    np.add.at(counts, (t, p), 1)
    return counts


def agreement(y_true: np.ndarray, y_pred: np.ndarray) -> Agreement:
    """Compare stage codes (0..4, -1 unscored) epoch by epoch.

    Parameters
    ----------
    y_true : numpy.ndarray
        True stage codes per epoch.
    y_pred : numpy.ndarray
        Predicted stage codes per epoch (compared over the shorter length).

    Returns
    -------
    Agreement
        The agreement over the epochs both score; the others are counted in ``n_excluded``.
    """
    return agreement_from_counts(pair_counts(y_true, y_pred))


def agreement_from_counts(counts: np.ndarray) -> Agreement:
    """:class:`Agreement` from the pair counts of :func:`pair_counts` (or their sum).

    Parameters
    ----------
    counts : numpy.ndarray
        (N_STAGES + 1, N_STAGES + 1) pair counts; row and column 0 are unscored.

    Returns
    -------
    Agreement
        The agreement over the scored pairs.
    """
    counts = np.asarray(counts, dtype=np.int64)
    cm = counts[1:, 1:]
    n = int(counts.sum())
    total = cm.sum()
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        rec = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    present = cm.sum(1) > 0
    acc = float(tp.sum() / total) if total else float("nan")
    pe = float((cm.sum(0) * cm.sum(1)).sum() / total**2) if total else float("nan")
    kappa = (acc - pe) / (1 - pe) if total and pe < 1 else (1.0 if total else float("nan"))
    return Agreement(
        n_epochs=int(total), n_excluded=int(n - total), accuracy=acc,
        macro_f1=float(f1[present].mean()) if present.any() else float("nan"),
        kappa=float(kappa),
        precision={s: float(v) for s, v in zip(STAGES, prec)},
        recall={s: float(v) for s, v in zip(STAGES, rec)},
        f1={s: float(v) for s, v in zip(STAGES, f1)},
        support={s: int(v) for s, v in zip(STAGES, cm.sum(1))},
        confusion=cm.tolist(),
    )
