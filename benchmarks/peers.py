"""Figure 6, peers: what a user would pick instead, on the same nights.

* **sleepstream** (the shipped weights in ``weights/``): causal, each epoch from itself
  and the four before it; scored here in batch (``sleepnet.batch.score_recording``,
  which live scoring equals).
* **yasa** ``SleepStaging`` (EEG only, Fpz-Cz): offline, the whole night at once
  (zero-phase filtering, features smoothed over past and future epochs, its
  LightGBM classifier trained on thousands of real nights, shipped inside the package).
* **the same CNN-LSTM with a centred window** (the label of the middle epoch of
  epochs i-2..i+2: two epochs of the future), trained the same way as a causal twin:
  same simulated subjects (0-49, 8 h, seed 0, subject-wise validation split), the
  shipped recipe (early stopping on validation macro-F1, patience 3) and the same
  number of passes over the data (``--train-passes`` each, so the same number of
  optimisation steps: a time budget alone would hand the twin trained while the
  machine is less busy more passes), with ``--train-minutes`` only as a safety cap.
  Comparing the two twins shows what causality costs; they live under
  ``benchmarks/results/peers/`` (never ``weights/``), are trained when missing or when
  the simulator changed, and the centred one is for this comparison only.

Nights: simulated subjects ``--subjects`` (default 900-904, never trained on), 8 h,
compared over the training protocol's range (30 min of wake around sleep); and the
real Sleep-EDF excerpt (10 epochs, all scored W by the expert) from ../shared/data.
Time: seconds per night, median, model or classifier already loaded.

    .venv/bin/python -m benchmarks.peers [--train-passes 5] [--subjects 900-904]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from .common import EXCERPT, RESULTS, Figure, params_key, progress, script_main, this_command

MODULE = "benchmarks.peers"
PEERS_DIR = RESULTS / "peers"
TRAIN_SUBJECTS = "0-49"
TRAIN_RECIPE = {"subjects": TRAIN_SUBJECTS, "hours": 8.0, "seed": 0, "val_fraction": 0.2, "patience": 3}
CENTRED = 2
CAUSAL = 4


def twin_dir(kind: str) -> Path:
    return PEERS_DIR / f"{kind}-short"


def twins_key(passes: int, minutes: float) -> str:
    return json.dumps({**TRAIN_RECIPE, "max_passes": passes, "max_minutes": minutes, "simulator": params_key()},
                      sort_keys=True)


def train_twins(passes: int, minutes: float, allow_train: bool = True) -> dict[str, Path] | None:
    """Train (or reuse) the causal and centred twins with the same data, recipe and budget;
    without ``allow_train``, twins already there (of any recipe) or None."""
    from sleepnet.models.cnn_lstm import ModelConfig
    from sleepnet.models.cnn_lstm_stager import CnnLstmModel, save_model
    from sleepnet.preprocess import PreprocessConfig
    from sleepnet.train.datasets import parse_subjects, simulated_nights
    from sleepnet.train.training import TrainConfig, evaluate_prepared, prepare_night, split_by_subject, train

    key = twins_key(passes, minutes)
    dirs = {kind: twin_dir(kind) for kind in ("causal", "centred")}
    if all((d / "metrics.json").exists() and json.loads((d / "metrics.json").read_text()).get("key") == key
           for d in dirs.values()):
        return dirs
    if not allow_train:
        return dirs if all((d / "metrics.json").exists() for d in dirs.values()) else None
    progress(f"peers: training the causal and centred twins ({passes} passes each, at most {minutes:g} min; "
             f"simulating {TRAIN_SUBJECTS} first)")
    pcfg, mcfg = PreprocessConfig(), ModelConfig()
    subjects = parse_subjects(TRAIN_SUBJECTS)
    prepared = []
    for k in subjects:                                     # one night at a time: bounded memory
        (night,) = simulated_nights([k], hours=TRAIN_RECIPE["hours"], seed=TRAIN_RECIPE["seed"])
        prepared.append((night, prepare_night(night, pcfg)))
    train_src, val_src = split_by_subject([n for n, _ in prepared], TRAIN_RECIPE["val_fraction"], TRAIN_RECIPE["seed"])
    by_name = {n.name: p for n, p in prepared}
    tr = [by_name[n.name] for n in train_src]
    va = [by_name[n.name] for n in val_src]
    for kind, pos in (("causal", CAUSAL), ("centred", CENTRED)):
        progress(f"peers: training the {kind} twin (label position {pos})")
        cfg = TrainConfig(max_passes=passes, patience=TRAIN_RECIPE["patience"],
                          seed=TRAIN_RECIPE["seed"], max_minutes=minutes, label_position=pos)
        t = time.perf_counter()
        net, info = train(tr, va, mcfg, pcfg, cfg)
        model = CnnLstmModel(net, mcfg, preprocess=pcfg, model_id=f"benchmark-{kind}-twin", source=dirs[kind])
        val, _ = evaluate_prepared(model, va, pos)
        labels = "last epoch of the window" if pos == CAUSAL else "MIDDLE epoch (non-causal, benchmark only)"
        save_model(dirs[kind], net, pcfg, f"benchmark-{kind}-twin",
                   extra={"scoring": {"sequence_length": 5, "labels": labels}, "label_position": pos})
        (dirs[kind] / "metrics.json").write_text(json.dumps(
            {"key": key, "label_position": pos, "train_minutes": (time.perf_counter() - t) / 60,
             "validation": val.as_dict(), **info}, indent=2) + "\n")
    return dirs


def yasa_codes(eeg_uv: np.ndarray, sfreq: float) -> np.ndarray:
    import mne
    import yasa

    raw = mne.io.RawArray(np.asarray(eeg_uv, dtype=np.float64)[None] * 1e-6,
                          mne.create_info(["EEG Fpz-Cz"], sfreq, ch_types="eeg"), verbose="error")
    hyp = yasa.SleepStaging(raw, eeg_name="EEG Fpz-Cz").predict()
    return np.asarray(hyp.as_int(), dtype=int)


def twin_codes(model, pos: int, eeg_uv: np.ndarray, sfreq: float) -> np.ndarray:
    from sleepnet.preprocess import Preprocessor
    from sleepnet.train.training import windowed_stage_codes

    epochs = Preprocessor(sfreq, model.preprocess).push(eeg_uv)
    data = np.stack([e.data for e in epochs])
    return windowed_stage_codes(model.net, data, np.array([e.scorable for e in epochs]), pos)


def ours_codes(model, eeg_uv: np.ndarray, sfreq: float) -> np.ndarray:
    from sleepnet.batch import score_recording
    from sleepnet.io.recordings import Recording

    preds = score_recording(Recording(np.asarray(eeg_uv, dtype=np.float32), sfreq, "Fpz-Cz", "bench"), model)
    return np.array([p.stage_code for p in preds])


def run(args: argparse.Namespace) -> dict:
    import torch

    from sleepnet.io.recordings import read_recording
    from sleepnet.metrics import agreement
    from sleepnet.train.datasets import parse_subjects, simulated_nights
    from sleepnet.train.training import trim_range
    from sleepnet.weights import load_model

    warnings.filterwarnings("ignore")            # yasa's classifier pickle warns about versions
    logging.getLogger("yasa").setLevel(logging.ERROR)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    shipped = load_model(args.weights)
    peers = {"sleepstream (shipped, causal)": lambda x, fs: ours_codes(shipped, x, fs),
             "yasa SleepStaging (offline)": yasa_codes}
    twins_note = "not trained (--no-train)"
    dirs = train_twins(args.train_passes, args.train_minutes, allow_train=not args.no_train)
    if dirs is not None:
        twins = {kind: load_model(d) for kind, d in dirs.items()}
        for m in twins.values():
            m.net.eval()
        peers["CNN-LSTM causal twin (same recipe)"] = lambda x, fs: twin_codes(twins["causal"], CAUSAL, x, fs)
        peers["CNN-LSTM centred twin (non-causal)"] = lambda x, fs: twin_codes(twins["centred"], CENTRED, x, fs)
        meta = {k: json.loads((d / "metrics.json").read_text()) for k, d in dirs.items()}
        twins_note = "; ".join(f"{k} twin: {len(m['history'])} passes in {m['train_minutes']:.0f} min, best pass "
                               f"{m['best_pass']}" for k, m in meta.items()) + f" (simulated subjects {TRAIN_SUBJECTS})"
    subjects = parse_subjects(args.subjects)
    progress(f"peers: simulating test subjects {args.subjects}")
    nights = simulated_nights(subjects, hours=8.0, seed=0)
    results: dict[str, dict] = {}
    for name, fn in peers.items():
        progress(f"peers: {name}")
        fn(nights[0].recording.eeg_uv[: int(nights[0].recording.sfreq * 600)], nights[0].recording.sfreq)  # warm
        yt, yp, secs, per = [], [], [], {}
        for n in nights:
            rec = n.recording
            t = time.perf_counter()
            codes = fn(rec.eeg_uv, rec.sfreq)
            secs.append(time.perf_counter() - t)
            m = min(len(codes), len(rec.labels))
            lo, hi = trim_range(rec.labels[:m])
            yt.append(rec.labels[lo:hi])
            yp.append(codes[lo:hi])
            per[n.name] = agreement(rec.labels[lo:hi], codes[lo:hi]).kappa
        a = agreement(np.concatenate(yt), np.concatenate(yp))
        real = None
        if EXCERPT.exists():
            ex = read_recording(EXCERPT, "EEG Fpz-Cz")
            codes = fn(ex.eeg_uv, ex.sfreq)
            real = {"epochs": int(len(codes)), "correct_W": int(np.sum(codes == 0)),
                    "predicted": [int(c) for c in codes]}
        results[name] = {"simulated": a.as_dict(), "per_night_kappa": per, "seconds_per_night": secs,
                         "real_excerpt": real}
    command = this_command(MODULE, args.argv)
    figures = []
    for name, r in results.items():
        s = r["simulated"]
        t = float(np.median(r["seconds_per_night"]))
        figures.append(Figure(f"peers, simulated nights {args.subjects}: {name}, kappa", s["kappa"], "",
                              "", None, command,
                              note=f"accuracy {s['accuracy']:.3f}, macro-F1 {s['macro_f1']:.3f} over {s['n_epochs']} "
                                   f"epochs of {len(nights)} nights; {t:.2f} s per 8-h night",
                              detail={"seconds_per_night_median": t, **r}))
    for name, r in results.items():
        if r["real_excerpt"] is None:
            continue
        e = r["real_excerpt"]
        figures.append(Figure(f"peers, real Sleep-EDF excerpt (10 W epochs): {name}, epochs right",
                              float(e["correct_W"]), f"/ {e['epochs']}", "", None, command,
                              note="predicted " + " ".join("W N1 N2 N3 R".split()[c] if c >= 0 else "-"
                                                           for c in e["predicted"])))
    twins = [n for n in results if "twin" in n]
    if len(twins) == 2:
        k_causal = results[twins[0]]["simulated"]["kappa"]
        k_centred = results[twins[1]]["simulated"]["kappa"]
        figures.append(Figure("peers: what causality costs (kappa, centred twin - causal twin)",
                              k_centred - k_causal, "", "", None, command,
                              note=f"{twins_note}; centred {k_centred:.3f}, causal {k_causal:.3f}"))
    return {"figures": figures, "results": results, "model_id": shipped.model_id}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subjects", default="900-904", help="simulated test subjects (default: 900-904)")
    p.add_argument("--train-passes", type=int, default=5,
                   help="passes over the training nights for each twin (default: 5)")
    p.add_argument("--train-minutes", type=float, default=30.0,
                   help="safety cap on each twin's training time, minutes (default: 30)")
    p.add_argument("--no-train", action="store_true", help="skip the twins when they are not trained yet")
    p.add_argument("--weights", help="shipped weights folder (default: weights/)")


if __name__ == "__main__":
    script_main("peers", __doc__, add_arguments, run, value_format=".3f")
