"""Our agreement figures (sleepnet.metrics) equal scikit-learn's on the same epochs:
accuracy, macro-F1 over the stages present in the truth, Cohen's kappa, per-stage
precision/recall/F1 and the confusion matrix, with unscored epochs (-1 on either side)
left out and counted."""
from __future__ import annotations

import numpy as np
import pytest

from sleepnet.metrics import agreement
from sleepnet.stages import STAGES

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in the test extra: pip install -e '.[test]'")


def noisy_scoring(n: int, seed: int, p_right: float, absent: tuple[int, ...] = (),
                  unscored: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A truth hypnogram and a scorer that is right with probability ``p_right``."""
    rng = np.random.default_rng(seed)
    present = [k for k in range(5) if k not in absent]
    truth = rng.choice(present, n, p=None)
    pred = np.where(rng.random(n) < p_right, truth, rng.integers(0, 5, n))
    truth[rng.random(n) < unscored] = -1
    pred[rng.random(n) < unscored] = -1
    return truth, pred


@pytest.mark.parametrize("seed, p_right, absent", [(0, 0.8, ()), (1, 0.3, ()), (2, 0.9, (1,)), (3, 0.6, (3, 4)),
                                                   (4, 0.0, ())])
def test_agreement_equals_scikit_learn_on_the_same_epochs(seed, p_right, absent):
    truth, pred = noisy_scoring(500, seed, p_right, absent)
    a = agreement(truth, pred)
    keep = (truth >= 0) & (pred >= 0)
    t, p = truth[keep], pred[keep]
    labels = list(range(5))
    assert a.n_epochs == keep.sum() and a.n_excluded == (~keep).sum() > 0
    assert a.accuracy == pytest.approx(sk.accuracy_score(t, p), abs=1e-12)
    assert a.kappa == pytest.approx(sk.cohen_kappa_score(t, p), abs=1e-12)
    in_truth = sorted(set(t.tolist()))
    assert a.macro_f1 == pytest.approx(sk.f1_score(t, p, labels=in_truth, average="macro", zero_division=0),
                                       abs=1e-12)
    np.testing.assert_array_equal(np.array(a.confusion), sk.confusion_matrix(t, p, labels=labels))
    prec, rec, f1, support = sk.precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    assert [a.precision[s] for s in STAGES] == pytest.approx(prec.tolist(), abs=1e-12)
    assert [a.recall[s] for s in STAGES] == pytest.approx(rec.tolist(), abs=1e-12)
    assert [a.f1[s] for s in STAGES] == pytest.approx(f1.tolist(), abs=1e-12)
    assert [a.support[s] for s in STAGES] == support.tolist()


def test_prediction_longer_than_truth_is_compared_on_the_common_epochs():
    truth, pred = noisy_scoring(300, 5, 0.7)
    a = agreement(truth, np.concatenate([pred, [0, 1, 2]]))
    keep = (truth >= 0) & (pred >= 0)
    assert a.kappa == pytest.approx(sk.cohen_kappa_score(truth[keep], pred[keep]), abs=1e-12)
