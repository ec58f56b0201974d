"""How close is the simulated EEG to real sleep? ``python -m benchmarks.realism``

Reads ``../shared/data`` (says so and exits 2 when it is absent) and prints, real beside
simulated, then saves to ``benchmarks/results/realism.json``:

1. **Real-to-sim**: a gradient-boosting classifier trained on the nine Fpz-Cz base
   features of the 20 real Sleep-EDF nights (``sleep-edf-features``, trimmed to 30 min
   of wake around sleep) labels the epochs of simulated nights: accuracy per stage and
   overall.
2. **Sim-to-real**: the same classifier trained on simulated epochs labels the real
   epochs of the subjects held out from calibration (SC405x-SC409x): accuracy, macro-F1,
   kappa, per-stage F1, with the real-to-real leave-one-subject-out figures on the same
   features beside it (the ceiling: what spectral power carries in these nights), and on
   the 10 wake epochs of the raw Sleep-EDF excerpt (the only labelled raw real EEG here).
3. **Hypnogram statistics**, real (51 Sleep-EDF hypnograms) vs simulated: stage
   percentages, sleep onset and REM latency, transitions per hour, mean bout lengths,
   share of N3 in the first third and of REM in the last third of the sleep period.

Needs scikit-learn (``pip install -e '.[bench]'``). Simulated nights use seeds far from
any used in calibration.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from sleepnet.errors import SleepstreamError
from sleepnet.features import BASE_FEATURE_NAMES, base_features
from sleepnet.metrics import agreement
from sleepnet.sim.calibrate import HELD_OUT_SUBJECTS, data_dir_or_error, load_feature_nights, subject_number
from sleepnet.sim.hypnogram_model import (
    HYPNOGRAM_STAT_NAMES,
    TRIM_WAKE_EPOCHS,
    generate_epochs,
    hypnogram_statistics,
    load_real_nights,
)
from sleepnet.sim.night import simulate_hypnogram, simulate_night
from sleepnet.sim.parameters import load_params
from sleepnet.stages import STAGES

RESULTS = Path(__file__).resolve().parent / "results" / "realism.json"
#: One classifier for every figure (real-to-sim, sim-to-real and the real LOSO ceiling):
#: gradient boosting, kept shallow so it learns spectral structure, not one night's quirks.
CLASSIFIER = dict(max_iter=200, learning_rate=0.1, max_depth=4, min_samples_leaf=50, random_state=0)
TARGETS = {"sim_to_real_accuracy": 0.60, "sim_to_real_kappa": 0.45, "real_to_sim_accuracy": 0.80}


def _classifier():
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        raise SystemExit("benchmarks.realism needs scikit-learn: .venv/bin/pip install -e '.[bench]'") from None
    return HistGradientBoostingClassifier(**CLASSIFIER)


def trimmed_like_real(labels: np.ndarray) -> np.ndarray:
    """A simulated hypnogram cut or padded to the real nights' protocol: 30 min of wake
    before the first and after the last sleep epoch."""
    sleep = np.flatnonzero(labels > 0)
    pad = np.zeros(TRIM_WAKE_EPOCHS, dtype=np.int8)
    return np.concatenate([pad, labels[sleep[0]: sleep[-1] + 1], pad]).astype(np.int8)


def simulated_features(n_nights: int, hours: float, seed: int, params=None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Base features (volts, 100 Hz) and labels of ``n_nights`` simulated nights, each
    trimmed like the real feature nights (30 min of wake around sleep)."""
    params = params or load_params()
    X, y, per_night = [], [], []
    for i in range(n_nights):
        labels = trimmed_like_real(generate_epochs(params.hypnogram, hours, np.random.default_rng([seed, i])))
        night = simulate_hypnogram(labels, seed + i, 100.0, params=params)
        n = night.n_epochs
        ep = night.eeg_uv[: n * 3000].reshape(n, 3000).astype(np.float64) * 1e-6
        X.append(base_features(ep))
        y.append(night.labels)
        per_night.append(n)
    return np.concatenate(X), np.concatenate(y), per_night


def _agreement_dict(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    a = agreement(y_true, y_pred)
    per_class = {}
    for k, s in enumerate(STAGES):
        tp = int(((y_true == k) & (y_pred == k)).sum())
        n_true = int((y_true == k).sum())
        n_pred = int((y_pred == k).sum())
        rec = tp / n_true if n_true else float("nan")
        prec = tp / n_pred if n_pred else float("nan")
        f1 = 2 * tp / (n_true + n_pred) if (n_true + n_pred) else float("nan")
        per_class[s] = {"n": n_true, "recall": rec, "precision": prec, "f1": f1}
    conf = np.zeros((len(STAGES), len(STAGES)), dtype=int)
    np.add.at(conf, (y_true.astype(int), y_pred.astype(int)), 1)
    return {"accuracy": float(a.accuracy), "macro_f1": float(a.macro_f1), "kappa": float(a.kappa),
            "n_epochs": int(len(y_true)), "per_stage": per_class, "confusion": conf.tolist()}


def real_to_real_loso(nights) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Leave-one-subject-out on real nights: for each subject, (true, predicted) labels of
    its nights from a classifier trained on all the other subjects."""
    out = {}
    for s in sorted({subject_number(n) for n in nights}):
        train = [n for n in nights if subject_number(n) != s]
        test = [n for n in nights if subject_number(n) == s]
        clf = _classifier().fit(np.concatenate([n.features for n in train]),
                                np.concatenate([n.labels for n in train]))
        out[s] = (np.concatenate([n.labels for n in test]), clf.predict(np.concatenate([n.features for n in test])))
    return out


def _pooled(folds: dict[int, tuple[np.ndarray, np.ndarray]], subjects) -> dict:
    return _agreement_dict(np.concatenate([folds[s][0] for s in subjects]),
                           np.concatenate([folds[s][1] for s in subjects]))


def hypnogram_comparison(data: Path, n_sim: int, seed: int, params=None) -> dict:
    real = load_real_nights(data / "hypnograms")
    real_stats = [hypnogram_statistics(n.labels, n.lights_off_known) for n in real]
    model = (params or load_params()).hypnogram
    rng = np.random.default_rng(seed)
    sim_stats = [hypnogram_statistics(generate_epochs(model, float(rng.uniform(7.5, 9.5)), rng))
                 for _ in range(n_sim)]
    out = {}
    for k in HYPNOGRAM_STAT_NAMES:
        r = np.array([d[k] for d in real_stats], dtype=float)
        s = np.array([d[k] for d in sim_stats], dtype=float)
        r, s = r[np.isfinite(r)], s[np.isfinite(s)]
        out[k] = {
            "real_mean": float(r.mean()), "real_sd": float(r.std(ddof=1)), "real_min": float(r.min()),
            "real_max": float(r.max()), "real_n": int(len(r)),
            "sim_mean": float(s.mean()), "sim_sd": float(s.std(ddof=1)),
            "sim_p10": float(np.percentile(s, 10)), "sim_p90": float(np.percentile(s, 90)), "sim_n": int(len(s)),
            "inside_real_range": bool(r.min() <= s.mean() <= r.max()),
        }
    out["_note"] = ("real: 39 Sleep-EDF cassette nights trimmed to 30 min of wake around sleep and 12 telemetry "
                    "nights from lights off; sleep onset latency only from the telemetry nights that start at "
                    "lights off (the cassette nights have no lights-off time)")
    return out


EXCERPT_NAME = "SC4001E0-PSG-first300s.edf"


def excerpt_check(data: Path, clf) -> dict | None:
    """The sim-trained classifier on the one labelled raw real recording: the 10 wake
    epochs of the Sleep-EDF excerpt (None when the file is absent)."""
    from sleepnet.io.recordings import read_recording

    path = data / "sleep-edf" / EXCERPT_NAME
    if not path.exists():
        return None
    rec = read_recording(path)
    if rec.sfreq != 100.0:
        raise SystemExit(f"{path}: expected 100 Hz, found {rec.sfreq:g} Hz")
    n = len(rec.eeg_uv) // 3000
    pred = clf.predict(base_features(rec.eeg_uv[: n * 3000].reshape(n, 3000).astype(np.float64) * 1e-6))
    return {"file": path.name, "n_epochs": int(n), "truth": "W (all, by the expert)",
            "predicted": [STAGES[int(k)] for k in pred], "right": int((pred == 0).sum())}


def feature_medians(X: np.ndarray, y: np.ndarray) -> dict:
    return {STAGES[k]: dict(zip(BASE_FEATURE_NAMES, np.round(np.median(X[y == k], axis=0), 4).tolist()))
            for k in range(len(STAGES)) if (y == k).any()}


def simulate_speed(repeats: int = 3) -> float:
    """Best wall time (s) of an 8-h night at 100 Hz."""
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        simulate_night(8.0, 777 + r, 100.0)
        best = min(best, time.perf_counter() - t0)
    return best


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "   -  "
    return f"{100 * v:5.1f}%" if pct else f"{v:6.3f}"


def report(res: dict) -> str:
    lines = []
    r2s, s2r, ceil, ceil_all = res["real_to_sim"], res["sim_to_real"], res["real_to_real_held_out"], \
        res["real_to_real_all"]
    lines.append(f"Realism of the simulated Fpz-Cz EEG (data: {res['data']})")
    lines.append(f"simulated: {res['sim_nights']} nights x {res['sim_hours']} h ({r2s['n_epochs']} epochs); "
                 f"real: {res['real_epochs']} epochs of 20 nights")
    env = res.get("envelope")
    lines.append("spectral envelope: " + (f"{env['mixture_components']}-component mixture per stage, within-stage "
                                          f"spread x{env['spread']:g} of the real one" if env else "none"))
    lines.append("")
    lines.append("1. real-to-sim: trained on real epochs (20 nights), labels simulated epochs")
    lines.append("   stage   recall")
    for s in STAGES:
        lines.append(f"   {s:6s} {_fmt(r2s['per_stage'][s]['recall'], True)}")
    lines.append(f"   overall accuracy {_fmt(r2s['accuracy'], True)}  kappa {_fmt(r2s['kappa'])}"
                 f"   (target >= {100 * TARGETS['real_to_sim_accuracy']:.0f}%)")
    lines.append("")
    lines.append("2. sim-to-real on held-out real subjects " + ", ".join(res["held_out_subjects"]))
    lines.append("                  trained on sim   real LOSO (same subjects)   real LOSO (all 10 subjects)")
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("kappa", "kappa")):
        pct = key != "kappa"
        lines.append(f"   {name:14s} {_fmt(s2r[key], pct):>10s}   {_fmt(ceil[key], pct):>16s}"
                     f"            {_fmt(ceil_all[key], pct):>16s}")
    for s in STAGES:
        lines.append(f"   F1 {s:11s} {_fmt(s2r['per_stage'][s]['f1']):>10s}   {_fmt(ceil['per_stage'][s]['f1']):>16s}"
                     f"            {_fmt(ceil_all['per_stage'][s]['f1']):>16s}")
    lines.append(f"   targets: accuracy >= {100 * TARGETS['sim_to_real_accuracy']:.0f}%, "
                 f"kappa >= {TARGETS['sim_to_real_kappa']:.2f}")
    ex = res.get("real_excerpt")
    if ex:
        lines.append(f"   raw real EEG ({ex['file']}, {ex['n_epochs']} epochs all W): {ex['right']}/{ex['n_epochs']} "
                     f"called W ({' '.join(ex['predicted'])})")
    lines.append("")
    lines.append("3. hypnogram statistics        real mean (sd) [min, max]        sim mean (sd) [p10, p90]   inside")
    for k in HYPNOGRAM_STAT_NAMES:
        d = res["hypnogram"][k]
        lines.append(f"   {k:26s} {d['real_mean']:7.2f} ({d['real_sd']:6.2f}) [{d['real_min']:7.2f}, {d['real_max']:7.2f}]"
                     f"   {d['sim_mean']:7.2f} ({d['sim_sd']:6.2f}) [{d['sim_p10']:7.2f}, {d['sim_p90']:7.2f}]"
                     f"   {'yes' if d['inside_real_range'] else 'NO'}")
    lines.append("")
    lines.append(f"speed: an 8-h night at 100 Hz in {res['simulate_8h_100hz_s']:.2f} s (best of 3, this machine)")
    met = res["targets_met"]
    lines.append("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    return "\n".join(lines)


def run(data: Path, n_nights: int, hours: float, seed: int, params=None) -> dict:
    nights = load_feature_nights(data)
    X_real = np.concatenate([n.features for n in nights])
    y_real = np.concatenate([n.labels for n in nights])
    X_sim, y_sim, _ = simulated_features(n_nights, hours, seed, params)

    real_clf = _classifier().fit(X_real, y_real)
    r2s = _agreement_dict(y_sim, real_clf.predict(X_sim))

    held = [n for n in nights if subject_number(n) in HELD_OUT_SUBJECTS]
    X_held = np.concatenate([n.features for n in held])
    y_held = np.concatenate([n.labels for n in held])
    sim_clf = _classifier().fit(X_sim, y_sim)
    s2r = _agreement_dict(y_held, sim_clf.predict(X_held))
    excerpt = excerpt_check(data, sim_clf)

    folds = real_to_real_loso(nights)
    ceiling = _pooled(folds, HELD_OUT_SUBJECTS)
    ceiling_all = _pooled(folds, sorted(folds))
    hyp = hypnogram_comparison(data, n_sim=300, seed=seed, params=params)
    res = {
        "data": str(data),
        "sim_nights": n_nights, "sim_hours": hours, "sim_seed": seed,
        "real_epochs": int(len(y_real)),
        "held_out_subjects": [f"SC40{s}" for s in HELD_OUT_SUBJECTS],
        "classifier": f"sklearn HistGradientBoostingClassifier({CLASSIFIER})",
        "sim_protocol": "simulated hypnograms trimmed like the real nights: 30 min of wake around sleep",
        "features": list(BASE_FEATURE_NAMES),
        "real_to_sim": r2s,
        "sim_to_real": s2r,
        "real_excerpt": excerpt,
        "real_to_real_held_out": ceiling,
        "real_to_real_all": ceiling_all,
        "hypnogram": hyp,
        "envelope": ({"spread": env.spread, "mixture_components": int(env.weights.shape[1])}
                     if (env := (params or load_params()).envelope) is not None else None),
        "feature_medians": {"real": feature_medians(X_real, y_real), "sim": feature_medians(X_sim, y_sim)},
        "simulate_8h_100hz_s": simulate_speed(),
    }
    res["targets_met"] = {
        "sim_to_real_accuracy>=0.60": s2r["accuracy"] >= TARGETS["sim_to_real_accuracy"],
        "sim_to_real_kappa>=0.45": s2r["kappa"] >= TARGETS["sim_to_real_kappa"],
        "real_to_sim_accuracy>=0.80": r2s["accuracy"] >= TARGETS["real_to_sim_accuracy"],
        "hypnogram_statistics_inside_real_range": all(
            v["inside_real_range"] for k, v in hyp.items() if not k.startswith("_")),
    }
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.realism", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="real data folder (default: ../shared/data)")
    p.add_argument("--nights", type=int, default=30, help="simulated nights (default: %(default)s)")
    p.add_argument("--hours", type=float, default=8.5, help="hours per simulated night (default: %(default)s)")
    p.add_argument("--seed", type=int, default=900_000, help="first simulated seed (default: %(default)s)")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON output (default: %(default)s)")
    p.add_argument("--params", type=Path, default=None, help="simulation parameters (default: the committed ones)")
    p.add_argument("--envelope-spread", type=float, default=None,
                   help="draw the spectral envelope with this within-stage spread instead of the committed one "
                        "(1 = as wide as the real nights)")
    args = p.parse_args(argv)
    try:
        data = data_dir_or_error(args.data)
    except SleepstreamError as exc:
        print(f"benchmarks.realism: {exc.naming({'data': '--data'})}", file=sys.stderr)
        return 2
    params = load_params(str(args.params)) if args.params else None
    if args.envelope_spread is not None:
        base = params or load_params()
        if base.envelope is None:
            print("benchmarks.realism: these simulation parameters have no spectral envelope", file=sys.stderr)
            return 2
        params = dataclasses.replace(base, envelope=base.envelope.with_spread(args.envelope_spread))
    res = run(data, args.nights, args.hours, args.seed, params)
    if args.params:
        res["params"] = str(args.params)
    print(report(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
