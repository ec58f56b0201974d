"""The recurrent stager (kind ``gru``) and the GBM + GRU ensemble (kind ``ensemble``): the
numpy recurrence equals torch's, a restored stager carries on exactly, weights folders
round-trip and fail in one line, the session start is honoured and carried across a
restart, and the shipped default scores the real excerpt and live like batch, bit for bit."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, eeg_like

from sleepnet.batch import score_recording
from sleepnet.errors import WeightsError
from sleepnet.io.recordings import Recording, read_recording
from sleepnet.models.base import CONFIG_FILE
from sleepnet.models.gru import GRU_FILE, N_GRU_INPUTS, GruNets, gru_inputs, save_gru_model
from sleepnet.night_context import HOURS_COLUMN, ContextConfig, NightContext
from sleepnet.preprocess import Preprocessor
from sleepnet.weights import load_model

POP = (-22.58, -22.97, -23.01, -23.02, -23.02, 0.999, 1.019, -21.65, 0.266)


def tiny_torch_gru(hidden: int = 6, seed: int = 3):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    return torch.nn.GRU(N_GRU_INPUTS, hidden, batch_first=True), torch.nn.Linear(hidden, 5)


def nets_from_torch(pairs, mean, scale) -> GruNets:
    arrays = {"w_ih": [], "w_hh": [], "b_ih": [], "b_hh": [], "w_out": [], "b_out": []}
    for gru, out in pairs:
        sd = {k: v.detach().double().numpy() for k, v in gru.state_dict().items()}
        for k, name in (("w_ih", "weight_ih_l0"), ("w_hh", "weight_hh_l0"), ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            arrays[k].append(sd[name])
        arrays["w_out"].append(out.weight.detach().double().numpy())
        arrays["b_out"].append(out.bias.detach().double().numpy())
    return GruNets.from_arrays({"input_mean": mean, "input_scale": scale, **{k: np.stack(v) for k, v in arrays.items()}})


@pytest.fixture(scope="module")
def tiny_gru_dir(tmp_path_factory):
    """A gru folder holding two tiny GRUs (hidden 6) with seeded random weights."""
    rng = np.random.default_rng(0)
    mean = np.concatenate([np.array(POP), np.zeros(9), [3.0, 0.5, 0.5]])
    scale = np.concatenate([rng.uniform(0.3, 1.5, 18), [2.0, 0.5, 0.3]])
    nets = nets_from_torch([tiny_torch_gru(seed=3), tiny_torch_gru(seed=4)], mean, scale)
    d = tmp_path_factory.mktemp("tiny-gru")
    save_gru_model(d, nets, ContextConfig(pop_mean=POP, shrink_epochs=100.0), "tiny-gru", "tiny test GRU")
    return d


def test_numpy_recurrence_equals_torchs_forward_to_float32_precision():
    torch = pytest.importorskip("torch")
    pairs = [tiny_torch_gru(hidden=16, seed=s) for s in (1, 2, 3)]
    rng = np.random.default_rng(5)
    mean, scale = rng.normal(0, 1, N_GRU_INPUTS), rng.uniform(0.5, 2.0, N_GRU_INPUTS)
    nets = nets_from_torch(pairs, mean, scale)
    x_raw = rng.normal(0, 2, (200, N_GRU_INPUTS))
    ours, h_last = nets.run(x_raw)
    with torch.no_grad():
        xt = torch.from_numpy(((x_raw - mean) / scale).astype(np.float32))[None]
        probs = []
        for gru, out in pairs:
            y, h = gru(xt)
            probs.append(torch.softmax(out(y[0]), dim=-1).numpy())
            np.testing.assert_allclose(h_last[len(probs) - 1], h[0, 0].numpy(), rtol=0, atol=2e-5)
    theirs = np.mean(probs, axis=0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)
    assert ours.std(axis=0).min() > 1e-3          # the outputs move: the comparison means something


def test_gru_inputs_take_the_night_context_rows_and_no_clock_as_zero_with_a_flag():
    ctx_known = NightContext(ContextConfig(pop_mean=POP), clock_known=True)
    ctx_unknown = NightContext(ContextConfig(pop_mean=POP), clock_known=False)
    f = np.array(POP) + 0.5
    for _ in range(240):                     # two hours of epochs
        rk, ru = ctx_known.row(f), ctx_unknown.row(f)
    assert rk[HOURS_COLUMN] == pytest.approx(239 / 120) and np.isnan(ru[HOURS_COLUMN])
    xk, xu = gru_inputs(rk)[0], gru_inputs(ru)[0]
    assert list(xk[-3:-1]) == [pytest.approx(239 / 120), 1.0] and list(xu[-3:-1]) == [0.0, 0.0]
    np.testing.assert_array_equal(xk[:18], xu[:18])              # features and relative features alike
    np.testing.assert_array_equal(xk[:9], f)


def _night_epochs(model, seconds=40 * 30.0, seed=5):
    return Preprocessor(100.0, model.preprocess).push(eeg_like(seconds, 100.0, seed=seed))


def test_gru_stager_restored_from_its_json_state_carries_on_exactly(tiny_gru_dir):
    model = load_model(tiny_gru_dir)
    epochs = _night_epochs(model)
    whole = model.new_stager().score(epochs)
    first = model.new_stager()
    part = first.score(epochs[:17])
    state = json.loads(json.dumps(first.state()))
    assert state["kind"] == "gru" and len(state["hidden"]) == 2 and len(state["hidden"][0]) == 6
    second = model.new_stager(session_start="lights-off")      # the state's session start wins
    second.restore(state)
    assert second.session_start == "unknown"
    rest = second.score(epochs[17:])
    assert [p.probabilities for p in part + rest] == [p.probabilities for p in whole]    # bit for bit
    fresh = model.new_stager().score(epochs[17:])
    assert [p.probabilities for p in fresh] != [p.probabilities for p in rest]         # the hidden state mattered
    with pytest.raises(ValueError, match="night state of model"):
        model.new_stager().restore({**state, "model_id": "another"})
    with pytest.raises(ValueError, match="hidden state of shape"):
        model.new_stager().restore({**state, "hidden": [[0.0] * 6]})


def test_one_epoch_at_a_time_gives_what_the_whole_night_gives_bit_for_bit(tiny_gru_dir):
    model = load_model(tiny_gru_dir)
    epochs = _night_epochs(model, seed=6)
    whole = model.new_stager().score(epochs)
    stager = model.new_stager()
    one_by_one = [p for e in epochs for p in stager.score([e])]
    assert [p.probabilities for p in one_by_one] == [p.probabilities for p in whole]
    assert [p.flags for p in whole[:4]] == [("warmup",)] * 4 and "warmup" not in whole[4].flags


def test_session_start_decides_whether_the_clock_is_an_input(tiny_gru_dir):
    model = load_model(tiny_gru_dir)
    assert model.kind == "gru" and model.default_session_start == "unknown"
    epochs = _night_epochs(model)
    known = model.new_stager(session_start="lights-off").score(epochs)
    unknown = model.new_stager().score(epochs)
    assert [p.probabilities for p in known] != [p.probabilities for p in unknown]
    with pytest.raises(ValueError, match="session_start='noon'"):
        model.new_stager(session_start="noon")


def test_feature_gbm_stager_keeps_its_session_start_in_its_state(model_v1):
    assert model_v1.default_session_start == "lights-off"          # trained on lights-off sessions only
    epochs = _night_epochs(model_v1, seconds=12 * 30.0)
    s = model_v1.new_stager(session_start="unknown")
    s.score(epochs[:6])
    state = json.loads(json.dumps(s.state()))
    assert state["session_start"] == "unknown"
    again = model_v1.new_stager()
    again.restore(state)
    assert again.session_start == "unknown"
    old = {k: v for k, v in state.items() if k != "session_start"}  # a state file written before this change
    again.restore(old)
    assert again.session_start == "lights-off"


@pytest.fixture(scope="module")
def model_v1():
    return load_model("feature-gbm-sleepedf-v1")


def test_gru_folder_round_trip_and_an_ensemble_of_folders(tiny_gru_dir, tmp_path, model_v1):
    from sleepnet.models.ensemble import save_ensemble_config

    m = load_model(tiny_gru_dir)
    with np.load(tiny_gru_dir / GRU_FILE, allow_pickle=False) as z:
        for k, v in m.nets.arrays().items():
            np.testing.assert_array_equal(z[k], v)
    assert m.context.pop_mean == POP
    d = tmp_path / "ens"
    shutil.copytree(tiny_gru_dir, d / "gru")
    shutil.copytree(model_v1.source, d / "gbm")
    save_ensemble_config(d, [("gbm", 3.0), ("gru", 1.0)], "tiny-ens", "test ensemble")
    ens = load_model(d)
    assert ens.kind == "ensemble" and ens.weights == (0.75, 0.25)
    assert [x.kind for x in ens.members] == ["feature-gbm", "gru"]
    epochs = _night_epochs(ens, seconds=8 * 30.0)
    a = ens.members[0].new_stager(session_start="unknown").score(epochs)
    b = ens.members[1].new_stager(session_start="unknown").score(epochs)
    both = ens.new_stager().score(epochs)
    np.testing.assert_allclose([p.probabilities for p in both],
                               0.75 * np.array([p.probabilities for p in a]) + 0.25 * np.array([p.probabilities for p in b]),
                               rtol=0, atol=1e-15)
    st = ens.new_stager()
    st.score(epochs[:3])
    state = json.loads(json.dumps(st.state()))
    again = ens.new_stager()
    again.restore(state)
    assert [p.probabilities for p in again.score(epochs[3:])] == [p.probabilities for p in both[3:]]


def _edit_config(d, change) -> None:
    cfg = json.loads((d / CONFIG_FILE).read_text())
    change(cfg)
    (d / CONFIG_FILE).write_text(json.dumps(cfg))


def _damage_npz(d, **changes):
    with np.load(d / GRU_FILE) as z:
        arrays = dict(z)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(d / GRU_FILE, **arrays)


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / GRU_FILE).unlink(), "missing"),
    (lambda d: (d / GRU_FILE).write_bytes(b"PK\x03\x04 not a zip at all"), "not a usable GRU weights file"),
    (lambda d: (d / GRU_FILE).write_bytes((d / GRU_FILE).read_bytes()[:300]), "not a usable GRU weights file"),
    (lambda d: _damage_npz(d, w_hh=np.zeros((2, 18, 5))), "w_hh has shape"),
    (lambda d: _damage_npz(d, b_out=np.full((2, 5), np.nan)), "non-finite"),
    (lambda d: _damage_npz(d, w_out=None), "no array w_out"),
    (lambda d: _damage_npz(d, input_scale=np.zeros(N_GRU_INPUTS)), "input_scale"),
    (lambda d: _edit_config(d, lambda c: c["gru"]["inputs"].reverse()), "the GRU's inputs"),
    (lambda d: _edit_config(d, lambda c: c.update(default_session_start="noon")), "session_start='noon'"),
])
def test_a_damaged_gru_folder_fails_with_one_line(tiny_gru_dir, tmp_path, damage, message):
    d = tmp_path / "w"
    shutil.copytree(tiny_gru_dir, d)
    damage(d)
    with pytest.raises(WeightsError, match=message) as err:
        load_model(d)
    assert "\n" not in str(err.value)


@pytest.mark.lsl
def test_a_damaged_ensemble_member_fails_with_one_line_through_the_command(tiny_gru_dir, tmp_path):
    from sleepnet.models.ensemble import save_ensemble_config

    d = tmp_path / "ens"
    shutil.copytree(tiny_gru_dir, d / "gru")
    save_ensemble_config(d, [("gru", 1.0), ("../elsewhere", 1.0)], "bad-ens", "bad")
    with pytest.raises(WeightsError, match="not inside the ensemble's folder"):
        load_model(d)
    save_ensemble_config(d, [("gru", 1.0)], "bad-ens", "bad")
    (d / "gru" / GRU_FILE).write_bytes(b"garbage")
    x = tmp_path / "n.npz"
    from sleepnet.io.recordings import write_continuous_npz

    write_continuous_npz(x, eeg_like(60, 100), 100)
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(x), "--weights", str(d),
                        "--out", str(tmp_path / "o.csv")], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "gru.npz: not a usable GRU weights file" in lines[0]


# -- the shipped default ------------------------------------------------------------------

def test_the_default_is_the_ensemble_and_the_others_stay_selectable():
    from sleepnet.weights import default_model_name, shipped_models

    default = load_model()
    assert default.kind == "ensemble" and default_model_name() == default.model_id
    assert [m.kind for m in default.members] == ["feature-gbm", "gru"]
    assert default.default_session_start == "unknown"
    assert {"feature-gbm-sleepedf-v1", "cnn-lstm-simulated-v2", default_model_name()} <= set(shipped_models())
    assert load_model("feature-gbm-sleepedf-v1").kind == "feature-gbm"


@pytest.mark.lsl
def test_score_command_with_the_default_calls_the_real_excerpt_wake_in_either_session_start(shared_data, tmp_path):
    edf = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    for start in ("unknown", "lights-off"):
        out = tmp_path / f"{start}.csv"
        r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(edf), "--out", str(out),
                            "--session-start", start], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"session start {start}" in r.stdout
        stages = [ln.split(",")[2] for ln in out.read_text().splitlines()[1:]]
        assert stages == ["W"] * 10, stages


@pytest.mark.lsl
@pytest.mark.timeout(180)
def test_default_model_live_equals_batch_bit_for_bit_on_a_simulated_night():
    """Real LSL on loopback, 128 Hz (resampled to 100 Hz on the way in): every probability
    of every epoch scored live equals batch scoring's exactly."""
    from live_helpers import score_live, simulated_eeg

    from replay.player import ReplaySource

    model = load_model()
    fs = 128.0
    x, _ = simulated_eeg(fs, 14, seed=9)
    batch = score_recording(Recording(eeg_uv=x, sfreq=fs, channel="Fpz-Cz", source="sim"), model)
    run = score_live(ReplaySource.from_arrays(x[:, None], fs, ["EEG Fpz-Cz"]), model, speed=None, chunk=333)
    assert len(run.records) == len(batch) == 14
    assert [r.probabilities for r in run.records] == [p.probabilities for p in batch]
    assert [r.stage for r in run.records] == [p.stage for p in batch]
    assert len({r.stage for r in run.records}) > 1


@pytest.mark.lsl
@pytest.mark.timeout(180)
def test_default_model_live_on_the_real_excerpt_restarted_on_its_state_equals_batch_bit_for_bit(shared_data, tmp_path):
    """The real Sleep-EDF excerpt over real LSL, started at lights-off, the scorer closed
    after 6 epochs and started again on its state file asking for ``unknown``: the state's
    ``lights-off`` wins, and every probability equals batch scoring's with lights-off, bit
    for bit (the hidden vector and the clock came back exactly)."""
    from live_helpers import score_live

    from replay.player import ReplaySource

    model = load_model()
    rec = read_recording(shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf")
    fs, x = rec.sfreq, rec.eeg_uv
    batch = score_recording(rec, model, session_start="lights-off")
    assert [p.stage for p in batch] == ["W"] * 10
    n = 6 * int(30 * fs)
    state = tmp_path / "night.tsv.state.json"
    first = score_live(ReplaySource.from_arrays(x[:n, None], fs, ["EEG Fpz-Cz"]), model, state_path=state,
                       session_start="lights-off")
    second = score_live(ReplaySource.from_arrays(x[n:, None], fs, ["EEG Fpz-Cz"]), model, state_path=state,
                        session_start="unknown")
    assert second.scorer.session_start == "lights-off"
    live = first.records + second.records
    assert len(live) == 10
    assert [r.probabilities for r in live] == [p.probabilities for p in batch]
    saved = json.loads(state.read_text())
    assert saved["stager"]["kind"] == "ensemble" and saved["stager"]["session_start"] == "lights-off"
    assert saved["stager"]["members"][0]["context"]["n_scored"] == 10
    unknown = score_recording(rec, model)              # the default: no clock
    assert [p.probabilities for p in unknown] != [p.probabilities for p in batch]


def test_gru_training_is_reproducible_from_its_seed():
    """The same recipe and seed give the same arrays, bit for bit (what lets `sleepstream
    train --kind ensemble` rebuild the shipped weights); another seed gives others."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    pytest.importorskip("torch")
    from sleepnet.io.feature_nights import read_feature_night
    from sleepnet.train.gru_training import GruTrainConfig, fit_gru

    night = [read_feature_night(SHARED_DATA / "sleep-edf-features" / "SC4012E0.npz")]
    cfg = GruTrainConfig(hidden=4, members=2, passes=1, lights_off_draws=1, anywhere_draws=1, short_draws=4)
    a, ctx = fit_gru(night, cfg)
    b, _ = fit_gru(night, cfg)
    c, _ = fit_gru(night, GruTrainConfig(**{**cfg.as_dict(), "seed": 1}))
    assert a.n_members == 2 and a.hidden == 4 and ctx.shrink_epochs == cfg.shrink_epochs
    for k, v in a.arrays().items():
        np.testing.assert_array_equal(v, b.arrays()[k])
    assert not np.array_equal(a.w_ih, c.w_ih)


@pytest.mark.lsl
def test_train_command_builds_an_ensemble_folder(tmp_path):
    """`sleepstream train --kind ensemble` on feature nights (a one-pass recipe on two
    subjects, to keep it short): a folder of a GBM and a GRU that loads and scores, its
    weight chosen on the training subjects (two folds here)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    pytest.importorskip("lightgbm")
    out = tmp_path / "e"
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "train", "--kind", "ensemble", "--dataset", "features",
                        "--subjects", "1-2", "--max-passes", "1", "--out", str(out), "--quiet"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ens = load_model(out)
    assert ens.kind == "ensemble" and [m.kind for m in ens.members] == ["feature-gbm", "gru"]
    assert ens.members[0].default_session_start == "unknown" and ens.members[1].nets.n_members == 3
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["train_nights"] == ["SC4011E0", "SC4012E0", "SC4021E0", "SC4022E0"]
    assert meta["settings"]["weight_choice"]["folds"] == [["01"], ["02"]]
    assert ens.weights[0] == meta["settings"]["gbm_weight_chosen"]
    rec = Recording(eeg_uv=eeg_like(120.0, 100.0, seed=4), sfreq=100.0, channel="Fpz-Cz", source="x")
    assert len(score_recording(rec, ens)) == 4


@pytest.mark.lsl
def test_a_bad_session_start_is_one_line_and_archives_take_the_models_own(tmp_path):
    import sleepstream
    from sleepnet.errors import SleepstreamError
    from sleepnet.io.recordings import write_continuous_npz

    x = eeg_like(60, 100)
    with pytest.raises(SleepstreamError, match="session_start='noon'"):
        sleepstream.stage(x, sfreq=100.0, session_start="noon")
    assert len(sleepstream.stage(x, sfreq=100.0, session_start="lights-off").stages) == 2
    for name in ("a.npz", "b.npz"):
        write_continuous_npz(tmp_path / name, x, 100)
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(tmp_path / "a.npz"),
                        str(tmp_path / "b.npz"), "--out", str(tmp_path / "scored"), "--session-start", "unknown"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--session-start applies to one recording" in lines[0]
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", "score", str(tmp_path / "a.npz"),
                        "--session-start", "noon"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "invalid choice: 'noon'" in r.stderr


def test_session_options_carry_the_session_start_and_name_a_bad_one():
    from scorer.session import SessionOptionError, SessionOptions
    from sleepstream.commands.live import FLAGS

    assert SessionOptions(session_start="lights-off").session_start == "lights-off"
    assert SessionOptions().session_start is None                     # the model's own default
    with pytest.raises(SessionOptionError) as err:
        SessionOptions(session_start="noon")
    assert str(err.value).startswith("session_start 'noon'")
    assert err.value.naming(FLAGS).startswith("--session-start 'noon'")
