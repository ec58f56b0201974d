"""Loading weights checks them against the code and fails with one clear line."""
from __future__ import annotations

import json
import shutil

import pytest

from sleepnet.errors import WeightsError
from sleepnet.weights import CONFIG_FILE, LABEL_MAP_FILE, WEIGHTS_FILE, load_model


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
