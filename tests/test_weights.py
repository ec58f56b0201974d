"""Loading weights checks them against the code and fails with one clear line."""
from __future__ import annotations

import json
import shutil

import pytest

from sleepnet.errors import WeightsError
from sleepnet.models.base import CONFIG_FILE, LABEL_MAP_FILE
from sleepnet.models.cnn_lstm_stager import WEIGHTS_FILE
from sleepnet.weights import load_model


@pytest.fixture
def weights_copy(seeded_model, tmp_path):
    d = tmp_path / "w"
    shutil.copytree(seeded_model.source, d)
    return d


def test_good_weights_load(weights_copy):
    m = load_model(weights_copy)
    assert m.model_id == "seeded-test" and not m.net.training


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / WEIGHTS_FILE).write_bytes(b"not a torch file"), "corrupt"),
    (lambda d: (d / WEIGHTS_FILE).unlink(), "missing"),
    (lambda d: (d / CONFIG_FILE).write_text("{ broken"), "corrupt JSON"),
    (lambda d: (d / LABEL_MAP_FILE).write_text(json.dumps({"0": "W", "1": "N2"})), "label map"),
])
def test_damaged_weights_fail_with_a_clear_line(weights_copy, damage, message):
    damage(weights_copy)
    with pytest.raises(WeightsError, match=message) as err:
        load_model(weights_copy)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key,value,message", [
    ("kind", "svm", r"config.json: unknown model kind 'svm' \(this code runs feature-gbm, gru, ensemble, cnn-lstm\)"),
    ("format_version", 2, r"config.json: format_version 2, this code reads 1"),
])
def test_every_folder_gets_the_format_checks_before_its_kind(weights_copy, key, value, message):
    cfg = json.loads((weights_copy / CONFIG_FILE).read_text())
    cfg[key] = value
    (weights_copy / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match=message):
        load_model(weights_copy)


def test_each_kind_has_one_folder_loader_and_the_shipped_models_use_every_kind():
    """The table of kinds names, per kind, a module with ``load_folder(d, cfg)``; the shipped
    models (and the ensemble's members) are of those kinds and of every one of them."""
    import importlib
    import inspect

    from sleepnet.models.base import KINDS
    from sleepnet.weights import shipped_models

    for kind, spec in KINDS.items():
        loader = getattr(importlib.import_module(spec.module), spec.loader)
        assert list(inspect.signature(loader).parameters) == ["d", "cfg"], kind
    models = [load_model(name) for name in shipped_models()]
    kinds = {m.kind for m in models} | {k.kind for m in models for k in getattr(m, "members", ())}
    assert kinds == set(KINDS)


def _edit_config(d, **model_changes):
    cfg = json.loads((d / CONFIG_FILE).read_text())
    cfg["model"].update(model_changes)
    (d / CONFIG_FILE).write_text(json.dumps(cfg))


def test_architecture_mismatch_is_named(weights_copy):
    _edit_config(weights_copy, embed_dim=64)
    with pytest.raises(WeightsError, match="do not fit the architecture"):
        load_model(weights_copy)


def test_wrong_sequence_length_is_refused(weights_copy):
    _edit_config(weights_copy, seq_len=7)
    with pytest.raises(WeightsError, match="sequence length"):
        load_model(weights_copy)


def test_zero_phase_filter_in_config_is_refused(weights_copy):
    cfg = json.loads((weights_copy / CONFIG_FILE).read_text())
    cfg["preprocess"]["filter"]["kind"] = "zero_phase"
    (weights_copy / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="unsupported filter"):
        load_model(weights_copy)


# --------------------------------------------------------------------------- feature-gbm trees


def _shipped_trees_copy(tmp_path, field: str, edit, tree: int = 0):
    """A copy of the shipped feature-gbm folder whose model.txt has ``field`` of tree
    ``tree`` changed by ``edit`` (a function of the list of its values)."""
    import re

    from sleepnet.weights import resolve_weights_dir

    d = tmp_path / "gbm"
    shutil.copytree(resolve_weights_dir("feature-gbm-sleepedf-v1"), d)
    text = (d / "model.txt").read_text()
    start = text.index(f"\nTree={tree}\n")
    end = text.index("\nTree=", start + 1)
    block = text[start:end]
    m = re.search(rf"^{field}=(.*)$", block, re.M)
    block = block[:m.start(1)] + " ".join(edit(m.group(1).split())) + block[m.end(1):]
    (d / "model.txt").write_text(text[:start] + block + text[end:])
    return d


def _set(i, value):
    return lambda vals: [*vals[:i], value, *vals[i + 1:]]


@pytest.mark.parametrize("field,edit,message", [
    ("left_child", _set(1, "1"), "node 1's left child points at itself"),
    ("left_child", _set(3, "1"), "points back at its ancestor node 1 (a cycle)"),
    ("left_child", _set(1, "0"), "points back at its ancestor node 0"),
    ("right_child", _set(0, "30"), "child 30 is out of range"),
    ("right_child", _set(2, "-32"), "child -32 is out of range"),
    ("left_child", _set(6, "-9"), "leaf 8 is reached twice"),
    ("split_feature", _set(0, "56"), "a split uses input 56, outside the model's 56 inputs"),
    ("threshold", _set(3, "nan"), "a threshold is NaN"),
    ("leaf_value", _set(3, "inf"), "a leaf value is not finite"),
    ("threshold", lambda v: v[:-1], "threshold has 29 entries for 30 splits"),
    ("decision_type", _set(0, "14"), "unknown decision_type"),
])
def test_a_damaged_tree_in_model_txt_is_one_weights_error_at_load(tmp_path, field, edit, message):
    d = _shipped_trees_copy(tmp_path, field, edit)
    with pytest.raises(WeightsError, match="not a usable LightGBM text model") as err:
        load_model(d)
    assert message in str(err.value) and "Tree=0" in str(err.value) and "\n" not in str(err.value)


def test_a_tree_deeper_than_the_bound_is_refused_and_one_just_within_it_scores():
    import numpy as np

    from sleepnet.models.gbm_trees import MAX_TREE_DEPTH, TreeEnsemble, TreeModelError

    def chain(depth):   # split i: x0 <= i -> leaf i, else split i + 1; the last split's right is the last leaf
        n = depth
        left = " ".join(str(-1 - i) for i in range(n))
        right = " ".join([str(i + 1) for i in range(n - 1)] + [str(-1 - n)])
        return ("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=0\n\n"
                f"Tree=0\nnum_leaves={n + 1}\nnum_cat=0\nsplit_feature={' '.join(['0'] * n)}\n"
                f"threshold={' '.join(str(i) for i in range(n))}\ndecision_type={' '.join(['2'] * n)}\n"
                f"left_child={left}\nright_child={right}\nleaf_value={' '.join(str(float(i)) for i in range(n + 1))}\n"
                "shrinkage=1\n\n\nend of trees\n")

    with pytest.raises(TreeModelError, match=f"deeper than {MAX_TREE_DEPTH} splits"):
        TreeEnsemble.from_lightgbm_text(chain(MAX_TREE_DEPTH + 1))
    trees = TreeEnsemble.from_lightgbm_text(chain(MAX_TREE_DEPTH))
    assert trees.max_depth == MAX_TREE_DEPTH
    x = np.array([[0.5], [MAX_TREE_DEPTH + 5.0]])
    assert trees.raw_scores(x)[:, 0].tolist() == [1.0, float(MAX_TREE_DEPTH)]


def test_trees_with_a_cycle_made_by_hand_raise_instead_of_looping():
    """Past the reader (an ensemble built by hand), the walk is still bounded by the depth
    the trees were read with: a cycle raises, it never loops."""
    from dataclasses import replace

    import numpy as np

    from sleepnet.models.gbm_trees import TreeModelError
    from sleepnet.weights import load_model

    trees = load_model("feature-gbm-sleepedf-v1").trees     # the shipped trees (the default's members too)
    root = int(trees.root[0])
    looped = replace(trees, left=np.where(np.arange(len(trees.left)) == root, root, trees.left),
                     right=np.where(np.arange(len(trees.right)) == root, root, trees.right))
    with pytest.raises(TreeModelError, match="deeper than"):
        looped.raw_scores(np.zeros((2, trees.n_features)))
