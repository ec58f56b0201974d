"""Gradient-boosted trees evaluated with numpy alone, read from LightGBM's text model format.

LightGBM trains the feature stager (``pip install lightgbm``, only where a model is
trained); scoring needs nothing but numpy: :class:`TreeEnsemble` parses the text model
(``Booster.model_to_string()``, no pickle) and walks every tree at once. Only numerical
splits are supported (the stager's inputs are all numerical); a NaN input follows each
split's default direction as LightGBM does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DEFAULT_LEFT = 2          # decision_type bit: missing values go left
_MISSING_SHIFT = 2         # decision_type bits 2-3: 0 none, 1 zero, 2 NaN
_MISSING_ZERO, _MISSING_NAN = 1, 2
_ZERO_THRESHOLD = 1e-35    # LightGBM's kZeroThreshold


class TreeModelError(ValueError):
    """A tree model text that this reader cannot use."""


@dataclass(frozen=True, repr=False)
class TreeEnsemble:
    """All trees of a multiclass LightGBM model, flattened into arrays.

    Parameters
    ----------
    n_classes : int
        Classes; tree t adds to class ``t % n_classes``.
    n_features : int
        Inputs per row.
    feature, threshold, left, right, missing_left, zero_missing : numpy.ndarray
        Per internal node (all trees concatenated): the input it splits on, its threshold
        (go left when ``x <= threshold``), its children as global node indices (a leaf is
        ``-1 - global leaf index``), whether a missing input goes left, and whether zero
        counts as missing.
    leaf_value : numpy.ndarray
        Per leaf (all trees concatenated): the raw score it adds.
    root : numpy.ndarray
        Per tree: its root as a global node index, or ``-1 - leaf`` for a one-leaf tree.
    """

    n_classes: int
    n_features: int
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    zero_missing: np.ndarray
    nan_missing: np.ndarray
    leaf_value: np.ndarray
    root: np.ndarray

    def __repr__(self) -> str:
        return (f"<TreeEnsemble {len(self.root)} trees, {self.n_classes} classes, "
                f"{self.n_features} inputs, {len(self.leaf_value)} leaves>")

    @property
    def n_trees(self) -> int:
        return len(self.root)

    @classmethod
    def from_lightgbm_text(cls, text: str) -> "TreeEnsemble":
        """Parse ``Booster.model_to_string()``; raises :class:`TreeModelError`."""
        head, _, rest = text.partition("\nTree=")
        if not rest:
            raise TreeModelError("no trees in the model text")
        kv = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
        try:
            n_classes = int(kv.get("num_tree_per_iteration", kv.get("num_class", "1")))
            n_features = int(kv["max_feature_idx"]) + 1
        except (KeyError, ValueError) as exc:
            raise TreeModelError(f"model header incomplete ({exc})") from None
        blocks = ("Tree=" + rest).split("\nTree=")
        feat, thr, lft, rgt, mleft, zmiss, nmiss, leaves, roots = [], [], [], [], [], [], [], [], []
        n_nodes = n_leaves = 0
        for block in blocks:
            body = block.split("end of trees")[0]
            t = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
            if "leaf_value" not in t:
                continue
            nl = int(t["num_leaves"])
            lv = np.array(t["leaf_value"].split(), dtype=np.float64)
            if len(lv) != nl:
                raise TreeModelError("a tree's leaf count does not match its leaf values")
            if nl == 1:
                roots.append(-1 - n_leaves)
            else:
                if int(t.get("num_cat", "0")) != 0:
                    raise TreeModelError("categorical splits are not supported")
                dt = np.array(t["decision_type"].split(), dtype=np.int64)
                if np.any(dt & 1):
                    raise TreeModelError("categorical splits are not supported")
                lc = np.array(t["left_child"].split(), dtype=np.int64)
                rc = np.array(t["right_child"].split(), dtype=np.int64)
                glob = lambda c: np.where(c >= 0, c + n_nodes, -1 - (-1 - c + n_leaves))  # noqa: E731
                feat.append(np.array(t["split_feature"].split(), dtype=np.int64))
                thr.append(np.array(t["threshold"].split(), dtype=np.float64))
                lft.append(glob(lc))
                rgt.append(glob(rc))
                mtype = (dt >> _MISSING_SHIFT) & 3
                mleft.append((dt & _DEFAULT_LEFT) != 0)
                zmiss.append(mtype == _MISSING_ZERO)
                nmiss.append(mtype == _MISSING_NAN)
                roots.append(n_nodes)
                n_nodes += nl - 1
            leaves.append(lv)
            n_leaves += nl
        if not roots or len(roots) % n_classes:
            raise TreeModelError(f"{len(roots)} trees is not a whole number of iterations of {n_classes} classes")
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dtype=dt))  # noqa: E731
        return cls(n_classes=n_classes, n_features=n_features, feature=cat(feat, np.int64),
                   threshold=cat(thr, np.float64), left=cat(lft, np.int64), right=cat(rgt, np.int64),
                   missing_left=cat(mleft, bool), zero_missing=cat(zmiss, bool), nan_missing=cat(nmiss, bool),
                   leaf_value=np.concatenate(leaves), root=np.array(roots, dtype=np.int64))

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """(n_rows, n_features) -> (n_rows, n_classes) summed leaf values (logits).

        Each row is computed on its own, in the same order whatever the batch, so one
        row scored alone equals that row scored in a batch."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} inputs, got shape {X.shape}")
        n = len(X)
        node = np.broadcast_to(self.root, (n, self.n_trees)).copy()
        rows = np.broadcast_to(np.arange(n)[:, None], node.shape)
        active = node >= 0
        while active.any():
            r, c = np.nonzero(active)
            nd = node[r, c]
            x = X[rows[r, c], self.feature[nd]]
            is_nan = np.isnan(x)
            x = np.where(is_nan & ~self.nan_missing[nd], 0.0, x)
            missing = (self.zero_missing[nd] & (np.abs(x) <= _ZERO_THRESHOLD)) | (self.nan_missing[nd] & is_nan)
            go_left = np.where(missing, self.missing_left[nd], x <= self.threshold[nd])
            node[r, c] = np.where(go_left, self.left[nd], self.right[nd])
            active[r, c] = node[r, c] >= 0
        values = self.leaf_value[-1 - node]                      # (n, n_trees)
        per_class = values.reshape(n, -1, self.n_classes)        # iteration-major
        out = np.zeros((n, self.n_classes))
        for i in range(per_class.shape[1]):                      # fixed order: batch-invariant
            out += per_class[:, i, :]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of :meth:`raw_scores`, (n_rows, n_classes)."""
        z = self.raw_scores(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
