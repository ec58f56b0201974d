"""Gradient-boosted trees evaluated with numpy alone, read from LightGBM's text model format.

LightGBM trains the feature stager (``pip install lightgbm``, only where a model is
trained); scoring needs nothing but numpy: :class:`TreeEnsemble` parses the text model
(``Booster.model_to_string()``, no pickle) and walks every tree at once. Only numerical
splits are supported (the stager's inputs are all numerical); a NaN input follows each
split's default direction as LightGBM does.

Every tree is checked as it is read (:func:`check_tree`): children in range, each node
and leaf reached exactly once from the root (no cycle, no child pointing back at an
ancestor, no shared or unreachable node), depth at most :data:`MAX_TREE_DEPTH`, split
features in range, thresholds that are numbers (LightGBM writes ``inf`` for a split that
only parts missing values off) and finite leaf values. A model text that fails is a
:class:`TreeModelError` at load, so a damaged ``model.txt`` can never make scoring loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DEFAULT_LEFT = 2          # decision_type bit: missing values go left
_MISSING_SHIFT = 2         # decision_type bits 2-3: 0 none, 1 zero, 2 NaN
_MISSING_ZERO, _MISSING_NAN = 1, 2
_ZERO_THRESHOLD = 1e-35    # LightGBM's kZeroThreshold
_MAX_DECISION_TYPE = 15    # bits 0-3 are all LightGBM writes
#: Deepest tree read (root to leaf, in splits). LightGBM's trees are as deep as their
#: leaves allow (num_leaves 31 by default: depth <= 30); a model deeper than this is
#: refused rather than walked split by split.
MAX_TREE_DEPTH = 1024


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
    feature, threshold, left, right, missing_left, zero_missing, nan_missing : numpy.ndarray
        Per internal node (all trees concatenated): the input it splits on, its threshold
        (go left when ``x <= threshold``), its children as global node indices (a leaf is
        ``-1 - global leaf index``), whether a missing input goes left, whether zero
        counts as missing, and whether NaN counts as missing.
    leaf_value : numpy.ndarray
        Per leaf (all trees concatenated): the raw score it adds.
    root : numpy.ndarray
        Per tree: its root as a global node index, or ``-1 - leaf`` for a one-leaf tree.
    max_depth : int
        The deepest tree's depth in splits (bounds the walk in :meth:`raw_scores`).
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
    max_depth: int = MAX_TREE_DEPTH

    def __repr__(self) -> str:
        return (f"<TreeEnsemble {len(self.root)} trees, {self.n_classes} classes, "
                f"{self.n_features} inputs, {len(self.leaf_value)} leaves>")

    @property
    def n_trees(self) -> int:
        """Number of trees (all classes)."""
        return len(self.root)

    @classmethod
    def from_lightgbm_text(cls, text: str) -> TreeEnsemble:
        """Parse LightGBM's text model (``Booster.model_to_string()``).

        Parameters
        ----------
        text : str
            The model text: a header (``num_class`` or ``num_tree_per_iteration``,
            ``max_feature_idx``), then one ``Tree=`` block per tree, iteration-major.

        Returns
        -------
        TreeEnsemble
            Its trees, flattened into node arrays (no categorical splits).

        Raises
        ------
        TreeModelError
            A model text this reader cannot use (the tree and the reason named).
        """
        head, _, rest = text.partition("\nTree=")
        if not rest:
            raise TreeModelError("no trees in the model text")
        kv = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
        try:
            n_classes = int(kv.get("num_tree_per_iteration", kv.get("num_class", "1")))
            n_features = int(kv["max_feature_idx"]) + 1
        except (KeyError, ValueError) as exc:
            raise TreeModelError(f"model header incomplete ({exc})") from None
        if n_classes < 1 or n_features < 1:
            raise TreeModelError(f"model header gives {n_classes} classes and {n_features} inputs")
        blocks = ("Tree=" + rest).split("\nTree=")
        feat, thr, lft, rgt, mleft, zmiss, nmiss, leaves, roots = [], [], [], [], [], [], [], [], []
        n_nodes = n_leaves = max_depth = 0
        for block in blocks:
            body = block.split("end of trees")[0]
            t = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
            if "leaf_value" not in t:
                continue
            name = f"Tree={body.split(chr(10), 1)[0].strip().removeprefix('Tree=')}"
            try:
                nl = int(t["num_leaves"])
                lv = np.array(t["leaf_value"].split(), dtype=np.float64)
                if nl < 1 or len(lv) != nl:
                    raise TreeModelError("its leaf count does not match its leaf values")
                if nl > 1:
                    if int(t.get("num_cat", "0")) != 0:
                        raise TreeModelError("categorical splits are not supported")
                    dt = np.array(t["decision_type"].split(), dtype=np.int64)
                    lc = np.array(t["left_child"].split(), dtype=np.int64)
                    rc = np.array(t["right_child"].split(), dtype=np.int64)
                    sf = np.array(t["split_feature"].split(), dtype=np.int64)
                    th = np.array(t["threshold"].split(), dtype=np.float64)
                    depth = check_tree(nl, sf, th, dt, lc, rc, lv, n_features)
                elif not np.all(np.isfinite(lv)):
                    raise TreeModelError("a leaf value is not finite")
                else:
                    depth = 0
            except TreeModelError as exc:
                raise TreeModelError(f"{name}: {exc}") from None
            except (KeyError, ValueError) as exc:
                raise TreeModelError(f"{name}: missing or unreadable field ({exc.__class__.__name__}: {exc})") from None
            max_depth = max(max_depth, depth)
            if nl == 1:
                roots.append(-1 - n_leaves)
            else:
                glob = lambda c, n_nodes=n_nodes, n_leaves=n_leaves: np.where(  # noqa: E731
                    c >= 0, c + n_nodes, -1 - (-1 - c + n_leaves))
                feat.append(sf)
                thr.append(th)
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
                   leaf_value=np.concatenate(leaves), root=np.array(roots, dtype=np.int64), max_depth=max_depth)

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Summed leaf values (logits) per row and class.

        Each row is computed on its own, in the same order whatever the batch, so one
        row scored alone equals that row scored in a batch.

        Parameters
        ----------
        X : numpy.ndarray
            (n_rows, n_features) inputs; NaN is a missing value, sent the way each split's
            LightGBM missing-value rule says (else taken as 0).

        Returns
        -------
        numpy.ndarray
            (n_rows, n_classes) float64 logits.

        Raises
        ------
        ValueError
            Rows of another width.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} inputs, got shape {X.shape}")
        n = len(X)
        node = np.broadcast_to(self.root, (n, self.n_trees)).copy()
        rows = np.broadcast_to(np.arange(n)[:, None], node.shape)
        active = node >= 0
        for _ in range(self.max_depth + 1):        # each step goes one split deeper
            if not active.any():
                break
            r, c = np.nonzero(active)
            nd = node[r, c]
            x = X[rows[r, c], self.feature[nd]]
            is_nan = np.isnan(x)
            x = np.where(is_nan & ~self.nan_missing[nd], 0.0, x)
            missing = (self.zero_missing[nd] & (np.abs(x) <= _ZERO_THRESHOLD)) | (self.nan_missing[nd] & is_nan)
            go_left = np.where(missing, self.missing_left[nd], x <= self.threshold[nd])
            node[r, c] = np.where(go_left, self.left[nd], self.right[nd])
            active[r, c] = node[r, c] >= 0
        if active.any():
            raise TreeModelError(f"a tree is deeper than the {self.max_depth} splits it was read with")
        values = self.leaf_value[-1 - node]                      # (n, n_trees)
        per_class = values.reshape(n, -1, self.n_classes)        # iteration-major
        out = np.zeros((n, self.n_classes))
        for i in range(per_class.shape[1]):                      # fixed order: batch-invariant
            out += per_class[:, i, :]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities: the softmax of :meth:`raw_scores`.

        Parameters
        ----------
        X : numpy.ndarray
            (n_rows, n_features) inputs, as :meth:`raw_scores` takes them.

        Returns
        -------
        numpy.ndarray
            (n_rows, n_classes) float64 probabilities, each row summing to 1.

        Raises
        ------
        ValueError
            Rows of another width than the trees' ``n_features``.
        """
        z = self.raw_scores(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def check_tree(n_leaves: int, split_feature: np.ndarray, threshold: np.ndarray, decision_type: np.ndarray,
               left_child: np.ndarray, right_child: np.ndarray, leaf_value: np.ndarray, n_features: int) -> int:
    """Check one tree of LightGBM's text format and return its depth (in splits).

    Parameters
    ----------
    n_leaves : int
        The tree's ``num_leaves``; it has ``n_leaves - 1`` splits, node 0 its root.
    split_feature, threshold, decision_type, left_child, right_child : numpy.ndarray
        Per split, as in the text (a child ``c >= 0`` is split ``c``, ``c < 0`` leaf ``-1 - c``).
    leaf_value : numpy.ndarray
        Per leaf, the raw score it adds.
    n_features : int
        Inputs per row.

    Returns
    -------
    int
        The longest path from the root to a leaf, in splits (0 for a one-leaf tree).

    Raises
    ------
    TreeModelError
        Field lengths that do not match, a child out of range, a node or leaf reached twice
        (a cycle, a child pointing back at an ancestor, a shared child) or never (unreachable),
        a tree deeper than :data:`MAX_TREE_DEPTH`, a split feature out of range, a decision
        type this reader does not know, a NaN threshold, a leaf value that is not finite.
    """
    n_splits = n_leaves - 1
    for field_name, arr in (("split_feature", split_feature), ("threshold", threshold),
                            ("decision_type", decision_type), ("left_child", left_child),
                            ("right_child", right_child)):
        if len(arr) != n_splits:
            raise TreeModelError(f"{field_name} has {len(arr)} entries for {n_splits} splits")
    if not np.all(np.isfinite(leaf_value)):
        raise TreeModelError("a leaf value is not finite")
    if n_splits == 0:
        return 0
    if np.any(np.isnan(threshold)):          # inf is LightGBM's own: a split that parts missing values off
        raise TreeModelError("a threshold is NaN")
    outside = split_feature[(split_feature < 0) | (split_feature >= n_features)]
    if len(outside):
        raise TreeModelError(f"a split uses input {int(outside[0])}, outside the model's {n_features} inputs")
    if (decision_type.min() < 0 or decision_type.max() > _MAX_DECISION_TYPE
            or np.any(((decision_type >> _MISSING_SHIFT) & 3) == 3)):
        raise TreeModelError("unknown decision_type")
    if np.any(decision_type & 1):
        raise TreeModelError("categorical splits are not supported")
    lc, rc = left_child.tolist(), right_child.tolist()
    for c in (*lc, *rc):
        if not -n_leaves <= c < n_splits:
            raise TreeModelError(f"child {c} is out of range ({n_splits} splits, {n_leaves} leaves)")
    parent = [-1] * n_splits                 # each split reached once, from the root down
    leaf_seen = [False] * n_leaves
    parent[0] = 0
    stack, deepest = [(0, 0)], 0
    while stack:
        node, depth = stack.pop()
        if depth >= MAX_TREE_DEPTH:
            raise TreeModelError(f"deeper than {MAX_TREE_DEPTH} splits")
        for side, c in (("left", lc[node]), ("right", rc[node])):
            if c < 0:
                if leaf_seen[-1 - c]:
                    raise TreeModelError(f"leaf {-1 - c} is reached twice (node {node}'s {side} child)")
                leaf_seen[-1 - c] = True
                deepest = max(deepest, depth + 1)
                continue
            if parent[c] != -1:
                up, ancestors = node, {node}
                while up != 0:
                    up = parent[up]
                    ancestors.add(up)
                what = "points at itself" if c == node else (
                    f"points back at its ancestor node {c} (a cycle)" if c in ancestors else f"is node {c}, "
                    "which another split already has as its child")
                raise TreeModelError(f"node {node}'s {side} child {what}")
            parent[c] = node
            stack.append((c, depth + 1))
    if -1 in parent:
        raise TreeModelError(f"node {parent.index(-1)} is never reached from the root")
    if not all(leaf_seen):
        raise TreeModelError(f"leaf {leaf_seen.index(False)} is never reached from the root")
    return deepest
