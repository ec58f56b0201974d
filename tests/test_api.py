"""The Python API (sleepstream.stage / StagingResult / load_model): the documentation's example
(docs/tutorials/files.md) runs as written; an array, an mne.io.Raw and a file give the `score` command's stages;
the result's arrays, statistics and exports agree with each other and read back; bad
input is one clear error."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
from test_cli_score import run_cli

import sleepstream
from sleepnet.batch import score_recording
from sleepnet.errors import InputFileError, SleepstreamError, WeightsError
from sleepnet.io.hypnograms import read_hypnogram
from sleepnet.io.recordings import read_recording, write_continuous_npz
from sleepnet.report.sleep_stats import sleep_statistics
from sleepnet.stages import STAGES

REPO = Path(__file__).resolve().parent.parent


API_PAGE = REPO / "docs" / "tutorials" / "files.md"


def api_example() -> str:
    """The block of the API page marked ``<!-- api-example -->`` (and ``<!-- run -->``)."""
    text = API_PAGE.read_text(encoding="utf-8")
    m = re.search(r"<!-- api-example[^>]*-->\n<!-- run -->\n```python\n(.*?)```", text, re.S)
    assert m, f"{API_PAGE} has no api-example block"
    return m.group(1)


@pytest.mark.lsl
def test_docs_api_example_runs_exactly_as_written(shared_data, tmp_path):
    """The block is run unchanged from a folder beside ../shared, as from the repo root."""
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "example.py").write_text(api_example(), encoding="utf-8")
    proc = subprocess.run([sys.executable, "example.py"], cwd=work, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<StagingResult: 10 epochs of 30 s")
    for name in ("excerpt_stages.csv", "excerpt_hypnogram.edf", "excerpt_events.tsv", "excerpt_events.json"):
        assert (work / name).stat().st_size > 0, name
    assert len(read_hypnogram(work / "excerpt_hypnogram.edf")) == 10
    assert "<EnsembleModel gbm-gru-sleepedf-v1 " in proc.stdout       # print(model): the default model


@pytest.mark.lsl
def test_array_raw_and_file_give_the_score_commands_stages(shared_data, model, tmp_path):
    edf = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    out = tmp_path / "cli.csv"
    proc = run_cli("score", edf, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as fh:
        cli_stages = [row["stage"] for row in csv.DictReader(fh)]
    raw = mne.io.read_raw_edf(edf, verbose="error")
    by_raw = sleepstream.stage(raw, ch_name="Fpz-Cz")           # tolerant channel match, volts -> µV
    by_file = sleepstream.stage(edf)
    by_array = sleepstream.stage(raw.get_data(picks="EEG Fpz-Cz")[0] * 1e6, sfreq=100.0)
    assert len(cli_stages) == 10
    for r in (by_raw, by_file, by_array):
        assert r.stages.tolist() == cli_stages
    np.testing.assert_array_equal(by_raw.probabilities, by_file.probabilities)
    np.testing.assert_allclose(by_array.probabilities, by_file.probabilities, rtol=0, atol=1e-6)
    assert by_raw.channel == "EEG Fpz-Cz" and by_raw.sfreq == 100.0
    ref = score_recording(read_recording(edf), model)
    assert [p.stage for p in ref] == cli_stages


@pytest.fixture(scope="module")
def night_result(tmp_path_factory):
    """A simulated 2-h night staged from an npz, with its true labels."""
    from sleepnet.sim.night import simulate_night

    night = simulate_night(2.0, 905, 100.0)
    path = tmp_path_factory.mktemp("api") / "night.npz"
    x = night.eeg_uv.copy()
    x[100 * 3000: 101 * 3000] = np.nan                              # one gap: an unscored epoch
    write_continuous_npz(path, x, night.sfreq, night.labels)
    return sleepstream.stage(path), night.labels


def test_result_arrays_statistics_and_flags_agree_with_each_other(night_result):
    r, labels = night_result
    n = r.n_epochs
    assert n == len(labels) == 240 and len(r) == n
    assert r.stages.shape == r.codes.shape == r.confidence.shape == r.onsets_s.shape == (n,)
    assert r.probabilities.shape == (n, 5)
    np.testing.assert_array_equal(r.onsets_s, np.arange(n) * 30.0)
    assert r.stages[100] == "UNS" and r.codes[100] == -1 and np.isnan(r.probabilities[100]).all()
    assert "gap" in r.flags[100] and "warmup" in r.flags[101]
    scored = r.codes >= 0
    np.testing.assert_allclose(r.probabilities[scored].sum(axis=1), 1.0, atol=1e-9)
    assert (np.array(STAGES)[r.probabilities[scored].argmax(axis=1)] == r.stages[scored]).all()
    assert r.sleep_statistics().as_dict() == pytest.approx(sleep_statistics(r.codes).as_dict(), nan_ok=True)
    assert r.sleep_statistics().tst_min > 30                     # a simulated night has sleep in it
    a = r.agreement(labels)
    assert a.n_excluded >= 1 and a.accuracy > 0.5                # the shipped model stages a simulated night
    text = repr(r)
    assert text.startswith("<StagingResult: 240 epochs of 30 s (2.00 h), 239 scored (")
    assert "from " in text and r.model_id in text


def test_dataframe_has_one_row_per_epoch_and_the_arrays_columns(night_result):
    pd = pytest.importorskip("pandas")
    r, _ = night_result
    df = r.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == r.n_epochs and df.index.name == "epoch"
    assert list(df.columns) == ["onset_s", "stage", "code", *(f"p_{s}" for s in STAGES), "confidence", "flags"]
    assert df["stage"].tolist() == r.stages.tolist()
    np.testing.assert_array_equal(df[[f"p_{s}" for s in STAGES]].to_numpy(), r.probabilities)


def test_dataframe_without_pandas_says_what_to_install(night_result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)              # import pandas -> ImportError
    with pytest.raises(ImportError, match="pip install pandas"):
        night_result[0].to_dataframe()
    assert set(night_result[0].as_dict()) >= {"onset_s", "stage", "p_W", "flags"}


def test_exports_read_back_as_the_same_stages(night_result, tmp_path):
    from sleepnet.io.night_file import read_night

    r, _ = night_result
    csv_night = read_night(r.to_csv(tmp_path / "s.csv"))
    np.testing.assert_array_equal(csv_night.stages, r.codes)
    edf = r.to_edf(tmp_path / "h.edf")
    np.testing.assert_array_equal(read_hypnogram(edf, r.n_epochs), r.codes)
    ann = mne.read_annotations(edf)
    assert set(ann.description) <= {"Sleep stage W", "Sleep stage N1", "Sleep stage N2", "Sleep stage N3",
                                     "Sleep stage R", "Sleep stage ?"}
    tsv, sidecar = r.to_bids_events(tmp_path / "e_events.tsv")
    np.testing.assert_array_equal(read_hypnogram(tsv), r.codes)
    assert sidecar.exists()
    for export in (r.to_csv, r.to_edf, r.to_bids_events):
        with pytest.raises(SleepstreamError, match="does not exist"):
            export(tmp_path / "no-such-folder" / "x")


def test_the_api_loads_with_the_one_loader_and_names_its_protocol():
    """``sleepstream.load_model`` IS :func:`sleepnet.weights.load_model` (no wrapper), and
    ``sleepstream.StagingModel`` the protocol every kind's model fits."""
    import sleepnet.models.base
    import sleepnet.weights

    assert sleepstream.load_model is sleepnet.weights.load_model
    assert sleepstream.StagingModel is sleepnet.models.base.StagingModel


def test_stage_takes_a_loaded_model_a_name_or_a_folder_alike(shared_data):
    """``stage(..., model=...)``: a model already loaded scores as its name and its folder do."""
    edf = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    loaded = sleepstream.load_model("feature-gbm-sleepedf-v1")
    by_model = sleepstream.stage(edf, model=loaded)
    assert by_model.model_id == loaded.model_id
    for other in ("feature-gbm-sleepedf-v1", loaded.source):
        r = sleepstream.stage(edf, model=other)
        assert r.stages.tolist() == by_model.stages.tolist()
        np.testing.assert_array_equal(r.probabilities, by_model.probabilities)


def test_load_model_by_default_by_folder_and_by_name_and_unknown_names_are_listed(model):
    default = sleepstream.load_model()
    assert default.model_id == model.model_id
    assert sleepstream.load_model(model.source).model_id == model.model_id
    assert sleepstream.load_model(model.model_id).model_id == model.model_id
    assert repr(default).startswith(f"<{type(model).__name__} {model.model_id} ")
    with pytest.raises(WeightsError, match=rf"no-such-model: no such weights folder \(shipped models: .*{model.source.name}"):
        sleepstream.load_model("no-such-model")


@pytest.mark.parametrize("data, kwargs, message", [
    (np.zeros((2, 6000)), {"sfreq": 100.0}, "one channel is staged at a time"),
    (np.zeros(6000), {}, "pass its sampling rate"),
    (np.zeros(6000), {"sfreq": -1.0}, "positive rate"),
    (np.zeros(2000), {"sfreq": 100.0}, "shorter than one 30-s epoch"),
    (np.array(["a"] * 6000), {"sfreq": 100.0}, "must be numeric"),
    ("no-such-file.edf", {}, "no such file"),
])
def test_bad_input_is_one_sleepstream_error_naming_it(data, kwargs, message):
    with pytest.raises(SleepstreamError, match=message) as e:
        sleepstream.stage(data, **kwargs)
    assert "\n" not in str(e.value)


def test_raw_without_the_channel_names_what_it_has():
    info = mne.create_info(["C3-A2", "EOG"], 100.0, "eeg")
    raw = mne.io.RawArray(np.zeros((2, 6000)), info, verbose="error")
    with pytest.raises(InputFileError, match="no channel matching 'Fpz-Cz'; it has: C3-A2, EOG"):
        sleepstream.stage(raw)


@pytest.mark.lsl
def test_import_sleepstream_stays_light_until_something_is_staged():
    code = "import sys, sleepstream; assert 'torch' not in sys.modules; print(sorted(sleepstream.__all__))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "'stage'" in proc.stdout and "'StagingResult'" in proc.stdout
