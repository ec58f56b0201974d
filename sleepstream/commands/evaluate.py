"""`sleepstream evaluate`: the metrics of `score` over a set of recordings, per recording and pooled."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import command_doc
from weights import DEFAULT_MODEL

HELP = "evaluate weights on labelled recordings (files, a folder, or simulated subjects), per recording and pooled"
EXAMPLE = "sleepstream evaluate --dataset simulated --subjects 900-904 --out eval.json"


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream evaluate``: the recordings, ``--dataset``, ``--subjects``,
    ``--folder``, ``--channel``, the simulation and protocol options, ``--weights``,
    ``--session-start``, ``--out`` and ``--quiet``.
    """
    p.add_argument("recordings", nargs="*", help="labelled recordings (npz with labels); or use --dataset")
    p.add_argument("--dataset", choices=("features", "sleep-edf", "folder", "simulated"),
                   help="evaluate on these nights instead of files; 'features' = npz feature nights "
                        "(X (n, 72), y), scored as live sessions (session start 5-60 min before sleep "
                        "onset, trimmed), feature models only")
    p.add_argument("--subjects", help="subjects for --dataset (default: 0 for features, the subject no "
                                      "shipped model saw; 900-904 for simulated)")
    p.add_argument("--folder", help="with --dataset features: folder of npz feature nights (default: "
                                    "../shared/data/sleep-edf-features); with --dataset folder: EDF/BDF "
                                    "recordings beside their hypnograms")
    p.add_argument("--channel", default=DEFAULT_CHANNEL, help="EEG channel (default: %(default)s)")
    p.add_argument("--hours", type=float, default=8.0, help="simulated night length (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default: %(default)s)")
    p.add_argument("--trim", action="store_true",
                   help="score whole nights but compare only 30 min of wake around sleep (the training protocol)")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help=f"a shipped model's name or a weights folder (default: {DEFAULT_MODEL}, the default "
                        "model named in weights/__init__.py)")
    from .live import add_session_start_argument

    add_session_start_argument(p, live=False)
    p.add_argument("--out", help="JSON file for the per-recording and pooled metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")


@command_doc
def evaluate_feature_nights(args: argparse.Namespace) -> int:
    """Feature nights: scored by a feature model as live sessions would be.

    Each night (:func:`sleepstream.commands.train.load_feature_nights`) is trimmed to 30 min
    of wake around sleep and scored from a session start 5-60 min before sleep onset
    (:func:`sleepnet.train.sessions.case_codes`); the agreement per night and pooled is
    printed unless ``--quiet`` and written to ``--out`` when given.

    Returns
    -------
    int
        0 (the exit status).

    Raises
    ------
    sleepnet.errors.WeightsError
        The model needs the raw signal (it does not score from per-epoch features).
    """
    import numpy as np
    from rich.console import Console

    from sleepnet.errors import WeightsError
    from sleepnet.metrics import agreement
    from sleepnet.train.sessions import case_codes, scores_from_features
    from sleepnet.weights import load_model
    from sleepstream.commands.train import load_feature_nights
    from sleepstream.console import agreement_tables

    nights = load_feature_nights(args)
    model = load_model(args.weights)
    if not scores_from_features(model):
        raise WeightsError(f"{model.source}: a {model.kind} model needs the raw signal; feature nights "
                           "are scored by models of per-epoch features only (feature-gbm, gru, ensemble)")
    start = getattr(args, "session_start", None)
    codes = {n.name: case_codes(model, [n], "lights-off", start) for n in nights}
    per = {name: agreement(t, p) for name, (t, p) in codes.items()}
    pooled = agreement(np.concatenate([t for t, _ in codes.values()]), np.concatenate([p for _, p in codes.values()]))
    if not args.quiet:
        console = Console()
        for name, a in per.items():
            console.print(f"{name}: {a.n_epochs} epochs, accuracy {a.accuracy:.3f}, macro-F1 {a.macro_f1:.3f}, "
                          f"kappa {a.kappa:.3f}")
        for t in agreement_tables(pooled, title=f"Pooled over {len(per)} feature nights ({model.model_id})"):
            console.print(t)
    if args.out:
        Path(args.out).write_text(json.dumps({
            "model_id": model.model_id, "dataset": "features", "nights": [n.name for n in nights],
            "protocol": "trimmed to 30 min of wake around sleep; session start 5-60 min before sleep onset",
            "session_start": start or getattr(model, "default_session_start", None),
            "pooled": pooled.as_dict(), "per_recording": {k: v.as_dict() for k, v in per.items()}}, indent=2))
    return 0


@command_doc
def run(args: argparse.Namespace) -> int:
    """Score labelled recordings (files or ``--dataset``) and report the agreement per recording and pooled.

    Returns
    -------
    int
        0 once the agreement is printed (nothing with ``--quiet``) and written to ``--out``
        when given; errors are raised.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        Neither recordings nor ``--dataset`` given, a recording without labels, or any
        error of reading the nights or the weights.
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from sleepnet.errors import InputFileError, SleepstreamError
    from sleepnet.io.exports import check_writable
    from sleepnet.io.recordings import read_recording
    from sleepnet.metrics import agreement
    from sleepnet.train.datasets import NightSource
    from sleepstream.commands.train import load_nights
    from sleepstream.console import agreement_tables, progress_bar

    if args.out:
        check_writable(Path(args.out))
    if args.subjects is None:
        args.subjects = {"features": "0", "simulated": "900-904"}.get(args.dataset or "", "0-19")
    if args.dataset == "features":
        return evaluate_feature_nights(args)
    if args.dataset:
        nights = load_nights(args)
    elif args.recordings:
        nights = []
        for path in args.recordings:
            rec = read_recording(path, args.channel)
            if rec.labels is None:
                raise InputFileError(f"{path}: no labels to evaluate against (npz 'labels'/'y')")
            nights.append(NightSource(rec, subject=Path(path).stem, name=Path(path).stem))
    else:
        raise SleepstreamError("give recordings or --dataset")
    from sleepnet.batch import score_recording
    from sleepnet.train.training import trim_range
    from sleepnet.weights import load_model

    model = load_model(args.weights)
    per, yt, yp = {}, [], []
    with progress_bar(args.quiet) as update:
        for i, n in enumerate(nights):
            preds = score_recording(n.recording, model, session_start=getattr(args, "session_start", None))
            p = np.array([x.stage_code for x in preds])
            t = n.recording.labels[:len(p)]
            lo, hi = trim_range(t) if args.trim else (0, len(p))
            per[n.name] = agreement(t[lo:hi], p[lo:hi])
            yt.append(t[lo:hi])
            yp.append(p[lo:hi])
            update("evaluating", i + 1, len(nights))
    pooled = agreement(np.concatenate(yt), np.concatenate(yp))
    if not args.quiet:
        console = Console()
        table = Table(title=f"Per recording ({model.model_id})")
        for c in ("recording", "epochs", "accuracy", "macro-F1", "kappa"):
            table.add_column(c, justify="right")
        for name, a in per.items():
            table.add_row(name, str(a.n_epochs), f"{a.accuracy:.3f}", f"{a.macro_f1:.3f}", f"{a.kappa:.3f}")
        console.print(table)
        for t in agreement_tables(pooled, title=f"Pooled over {len(per)} recordings"):
            console.print(t)
    if args.out:
        Path(args.out).write_text(json.dumps({"model_id": model.model_id, "trim": args.trim,
                                              "pooled": pooled.as_dict(),
                                              "per_recording": {k: v.as_dict() for k, v in per.items()}}, indent=2))
    return 0
