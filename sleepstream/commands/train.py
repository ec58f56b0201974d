"""`sleepstream train`: train a model (the feature stager by default, the recurrent stager,
their ensemble, or the CNN-LSTM) and export a weights folder."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from sleepnet.doc_sections import sections_of
from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import command_doc

HELP = ("train the feature stager (default), the recurrent stager, their ensemble or the CNN-LSTM on real "
        "Sleep-EDF feature nights, Sleep-EDF (downloaded through MNE), a folder of EDF+hypnograms, or simulated nights")
EXAMPLE = "sleepstream train --dataset features --subjects 1-9 --out weights-real"
DEFAULT_FEATURES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sleep-edf-features"
DEFAULT_SUBJECTS = {"features": "1-9", "sleep-edf": "0-19", "folder": None, "simulated": "0-19"}


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream train``: ``--kind``, ``--dataset``, ``--subjects``,
    ``--folder``, ``--features``, ``--channel``, the simulation and training settings,
    ``--out``, ``--model-id`` and ``--quiet``.
    """
    p.add_argument("--kind", choices=("feature-gbm", "gru", "ensemble", "cnn-lstm"), default="feature-gbm",
                   help="model kind: gradient-boosted trees over causal spectral features and night context "
                        "(needs `pip install lightgbm` to train); a causal GRU over the night's feature sequence "
                        "(torch to train, numpy to score); their ensemble (the default model's kind: trees "
                        "and GRU both trained for sessions that start anywhere); or the CNN-LSTM "
                        "(default: %(default)s)")
    p.add_argument("--dataset", choices=("features", "sleep-edf", "folder", "simulated"), default="features",
                   help="where the nights come from: 'features' = npz feature nights (X (n, 72), y) such as "
                        "../shared/data/sleep-edf-features (feature-gbm, gru, ensemble); 'folder' = EDF/BDF + hypnograms; "
                        "'sleep-edf' = download through MNE; 'simulated' (default: %(default)s)")
    p.add_argument("--subjects",
                   help="subject numbers: Sleep-EDF subjects (SC4xx), or simulated subjects (default: 1-9 for "
                        "features, so subject 0 stays an independent test; 0-19 for sleep-edf and simulated; "
                        "every night of a folder)")
    p.add_argument("--folder", help="with --dataset features: folder of npz feature nights (default: "
                                    "../shared/data/sleep-edf-features); with --dataset folder: EDF/BDF "
                                    "recordings beside their hypnograms")
    p.add_argument("--features", choices=("base", "scale-free"), default="base",
                   help="feature-gbm: 'base' (absolute band powers, variance, mobility: the default model's) or "
                        "'scale-free' (band shares and ratios only, for per-epoch normalised input) "
                        "(default: %(default)s)")
    p.add_argument("--channel", default=DEFAULT_CHANNEL, help="EEG channel (default: %(default)s)")
    p.add_argument("--hours", type=float, default=8.0, help="simulated night length in hours (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for splits, initialisation and simulation (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of subjects held out for early stopping (default: %(default)s)")
    p.add_argument("--max-passes", type=int,
                   help="passes over the training nights (at most, for the CNN-LSTM; default: 30 for the "
                        "CNN-LSTM, the shipped recipe's for the GRU)")
    p.add_argument("--patience", type=int, default=4, help="passes without validation gain before stopping (default: %(default)s)")
    p.add_argument("--max-minutes", type=float, help="stop after this much training time")
    p.add_argument("--out", default="weights-trained", help="weights folder to write (default: %(default)s)")
    p.add_argument("--model-id", help="identifier written into config.json (default: derived from the data)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command_doc
def subjects_spec(args: argparse.Namespace) -> str | None:
    """The ``--subjects`` given, else the dataset's default (:data:`DEFAULT_SUBJECTS`).

    Returns
    -------
    str or None
        A subject spec such as ``1-9``; None for every night of a folder.
    """
    return args.subjects if args.subjects is not None else DEFAULT_SUBJECTS.get(args.dataset)


@command_doc
def load_feature_nights(args: argparse.Namespace):
    """The npz feature nights of ``--folder`` (default: the shared Sleep-EDF features),
    filtered by ``--subjects`` (Sleep-EDF subject numbers).

    Returns
    -------
    list of sleepnet.io.feature_nights.FeatureNight
        The nights of those subjects, in file-name order.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        A bad folder or file, or no night of the subjects asked for.
    """
    from sleepnet.errors import SleepstreamError
    from sleepnet.io.feature_nights import read_feature_folder
    from sleepnet.train.datasets import parse_subjects

    nights = read_feature_folder(args.folder or DEFAULT_FEATURES)
    spec = subjects_spec(args)
    if spec:
        wanted = {f"{s:02d}" for s in parse_subjects(spec)}
        nights = [n for n in nights if n.subject in wanted]
        if not nights:
            raise SleepstreamError(f"--subjects {spec}: no feature night of those subjects in "
                                   f"{args.folder or DEFAULT_FEATURES}")
    return nights


@command_doc
def load_nights(args: argparse.Namespace):
    """The raw labelled nights of ``--dataset`` (Sleep-EDF through MNE, a folder, or simulated).

    Returns
    -------
    list of sleepnet.train.datasets.NightSource
        The nights of the subjects of :func:`subjects_spec` (every night of a folder).

    Raises
    ------
    sleepnet.errors.SleepstreamError
        ``--dataset folder`` without ``--folder``, or ``--dataset features`` (no raw signal).
    """
    from sleepnet.errors import SleepstreamError
    from sleepnet.train.datasets import folder_nights, parse_subjects, simulated_nights, sleep_edf_nights

    if args.dataset == "sleep-edf":
        return sleep_edf_nights(parse_subjects(subjects_spec(args)), channel=args.channel)
    if args.dataset == "folder":
        if not args.folder:
            raise SleepstreamError("--dataset folder needs --folder DIR")
        return folder_nights(args.folder, args.channel)
    if args.dataset == "features":
        raise SleepstreamError("--dataset features holds no raw signal: it trains and evaluates the "
                               "feature-gbm, gru and ensemble kinds only")
    return simulated_nights(parse_subjects(subjects_spec(args)), hours=args.hours, seed=args.seed)


@command_doc
def feature_nights_for(args: argparse.Namespace, update):
    """The training nights as per-epoch features: npz feature nights, or raw nights
    through our own preprocessing.

    Parameters
    ----------
    update : callable
        The progress bar's ``update(what, done, total)``, told of each raw night's features.

    Returns
    -------
    list of sleepnet.io.feature_nights.FeatureNight
        The training nights.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        No nights to train on, or any error of reading them.
    """
    from sleepnet.errors import SleepstreamError
    from sleepnet.train.feature_training import nights_from_sources

    if args.dataset == "features":
        return load_feature_nights(args)
    sources = load_nights(args)
    if not sources:
        raise SleepstreamError("no nights to train on")
    return nights_from_sources(sources, lambda i, n: update("computing features", i, n))


PROTOCOL = {"split": "subject-wise", "trim": "30 min of wake before the first and after the last sleep epoch",
            "session_start": "drawn 5-60 min before sleep onset, label-blind", "labels": "current epoch"}


@command_doc
def train_feature_model(args: argparse.Namespace, out: Path, console) -> int:
    """Feature nights (or raw nights through our own features) -> a feature-gbm folder.

    Writes the model and its ``metrics.json`` (nights, settings, protocol) into ``out``.

    Parameters
    ----------
    out : pathlib.Path
        The weights folder to write (checked by :func:`check_out_folder`).
    console : rich.console.Console
        Where the closing line goes (nothing with ``--quiet``).

    Returns
    -------
    int
        0 once the model and its ``metrics.json`` are written into ``out``; errors are raised.
    """
    from sleepnet.models.feature_gbm import save_feature_model
    from sleepnet.train.feature_training import FeatureTrainConfig, fit_trees
    from sleepstream.console import progress_bar

    with progress_bar(args.quiet) as update:
        nights = feature_nights_for(args, update)
        update("training trees", 0, 1)
        cfg = FeatureTrainConfig(seed=args.seed, feature_set=args.features)
        text, context = fit_trees(nights, cfg)
        update("training trees", 1, 1)
    subjects = sorted({n.subject for n in nights})
    model_id = args.model_id or f"feature-gbm-{args.dataset}-{len(nights)}n-seed{args.seed}"
    what = "scale-free spectral features (band shares and ratios, no level)" if args.features == "scale-free" \
        else "spectral features"
    summary = (f"{model_id}: gradient-boosted trees over causal {what} and night context, trained on "
               f"{len(nights)} {args.dataset} nights (subjects {', '.join(subjects)})")
    save_feature_model(out, text, context, model_id, summary, extra={"trained_on": args.dataset})
    return write_feature_metrics(out, nights, {"model_id": model_id, "kind": "feature-gbm", "dataset": args.dataset},
                                 cfg.as_dict(), PROTOCOL, console if not args.quiet else None)


@sections_of(train_feature_model, """Feature nights -> a ``gru`` folder, or an ``ensemble`` folder holding a GBM
    (``gbm/``) and a GRU (``gru/``) trained for sessions that start anywhere.

    Writes the model(s) and ``metrics.json`` into ``out``; for an ensemble, the GBM's
    weight is chosen on folds of the training nights.""")
def train_recurrent_model(args: argparse.Namespace, out: Path, console) -> int:
    from sleepnet.models.ensemble import save_ensemble_config
    from sleepnet.models.feature_gbm import save_feature_model
    from sleepnet.models.gru import save_gru_model
    from sleepnet.train.feature_training import fit_trees
    from sleepnet.train.gru_training import EnsembleTrainConfig, choose_gbm_weight, fit_gru, weight_folds
    from sleepstream.console import progress_bar

    cfg = EnsembleTrainConfig()
    gru = replace(cfg.gru, seed=args.seed, passes=args.max_passes or cfg.gru.passes)
    cfg = replace(cfg, gbm=replace(cfg.gbm, seed=args.seed), gru=gru)
    with progress_bar(args.quiet) as update:
        nights = feature_nights_for(args, update)
        subjects = sorted({n.subject for n in nights})
        kind_of = "real feature" if args.dataset == "features" else args.dataset
        what = f"{len(nights)} {kind_of} nights (subjects {', '.join(subjects)})"
        model_id = args.model_id or f"{args.kind}-{args.dataset}-{len(nights)}n-seed{args.seed}"
        gru_dir = out if args.kind == "gru" else out / "gru"
        nets, context = fit_gru(nights, cfg.gru, lambda p, n: update("training the GRU", p, n))
        gru_id = model_id if args.kind == "gru" else f"{model_id}-gru"
        save_gru_model(gru_dir, nets, context, gru_id,
                       f"{gru_id}: causal GRU over the night's spectral features, trained on {what}",
                       extra={"trained_on": args.dataset})
        settings: dict = {"gru": cfg.gru.as_dict()}
        if args.kind == "ensemble":
            w, scores = choose_gbm_weight(nights, cfg, on_fold=lambda j, n: update("choosing the members' weights", j, n))
            update("training trees", 0, 1)
            text, gbm_context = fit_trees(nights, cfg.gbm)
            update("training trees", 1, 1)
            assert gbm_context == context
            save_feature_model(out / "gbm", text, context, f"{model_id}-gbm",
                               f"{model_id}-gbm: gradient-boosted trees over causal spectral features and night "
                               f"context, trained on {what} for sessions started at lights-off or anywhere",
                               extra={"trained_on": args.dataset,
                                      "default_session_start": cfg.gbm.default_session_start})
            save_ensemble_config(out, [("gbm", w), ("gru", round(1.0 - w, 10))], model_id,
                                 f"{model_id}: weighted mean of gradient-boosted trees and a causal GRU over "
                                 f"spectral features and night context, trained on {what}",
                                 extra={"trained_on": args.dataset})
            settings = {**cfg.as_dict(), "gbm_weight_chosen": w,
                        "weight_choice": {"folds": weight_folds(nights, cfg.weight_folds),
                                          "kappa_by_gbm_weight": {str(k): v for k, v in scores.items()},
                                          "sessions": "from lights-off, no clock (the default's use)"}}
    return write_feature_metrics(out, nights, {"model_id": model_id, "kind": args.kind, "dataset": args.dataset},
                                 settings, {**PROTOCOL, "sessions": "lights-off sessions with and without the "
                                            "clock, sessions starting anywhere, short sessions (the "
                                            "isolated-epoch case)"}, console if not args.quiet else None)


def write_feature_metrics(out: Path, nights: list, head: dict, settings: dict, protocol: dict, console) -> int:
    """Write the ``metrics.json`` of a model trained on feature nights and say what it was trained on.

    Parameters
    ----------
    out : pathlib.Path
        The weights folder just written.
    nights : list of sleepnet.io.feature_nights.FeatureNight
        The training nights (their names, subjects and scored epochs are recorded).
    head : dict
        The first entries: ``model_id``, ``kind`` and ``dataset``.
    settings : dict
        The training settings, recorded as ``settings``.
    protocol : dict
        How the nights were cut and sessions drawn, recorded as ``protocol``.
    console : rich.console.Console or None
        Where the closing line goes; None: nowhere (``--quiet``).

    Returns
    -------
    int
        0 (the exit status).
    """
    subjects = sorted({n.subject for n in nights})
    n_epochs = int(sum(((n.labels >= 0) & n.scorable).sum() for n in nights))
    metrics = {**head, "subjects": subjects, "train_nights": [n.name for n in nights], "train_epochs": n_epochs,
               "settings": settings, "protocol": protocol}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if console is not None:
        console.print(f"trained on {len(nights)} nights ({n_epochs} scored epochs, subjects "
                      f"{', '.join(subjects)}); weights in {out}/")
    return 0


def check_out_folder(out: Path) -> None:
    """Fail before any training, with one line, when the weights folder cannot be made.

    Parameters
    ----------
    out : pathlib.Path
        The weights folder to write: a folder, or a path whose nearest existing parent is a
        writable folder.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        ``out`` exists and is not a folder, or cannot be made there.
    """
    import os

    from sleepnet.errors import SleepstreamError

    if out.exists() and not out.is_dir():
        raise SleepstreamError(f"{out}: exists and is not a folder")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SleepstreamError(f"{out}: cannot make the weights folder there ({probe} is not a writable folder)")


@command_doc
def run(args: argparse.Namespace) -> int:
    """Train a model of ``--kind`` on the nights of ``--dataset`` and write its weights folder.

    The feature kinds go to :func:`train_feature_model` and :func:`train_recurrent_model`;
    the CNN-LSTM trains with a subject-wise validation split for early stopping.

    Returns
    -------
    int
        0 once the weights folder (the model, ``config.json``, ``metrics.json``) is written;
        errors are raised.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        A bad ``--out``, ``--val-fraction`` outside [0, 1), ``--max-passes`` below 1,
        ``--features`` other than base for gru/ensemble, or no nights to train on.
    """
    from rich.console import Console

    from sleepnet.errors import SleepstreamError
    from sleepstream.console import agreement_tables, progress_bar

    console = Console()
    out = Path(args.out)
    check_out_folder(out)
    if not 0 <= args.val_fraction < 1:
        raise SleepstreamError(f"--val-fraction {args.val_fraction}: must be in [0, 1)")
    if args.max_passes is not None and args.max_passes < 1:
        raise SleepstreamError(f"--max-passes {args.max_passes}: must be at least 1")
    if args.kind == "feature-gbm":
        return train_feature_model(args, out, console)
    if args.kind in ("gru", "ensemble"):
        if args.features != "base":
            raise SleepstreamError(f"--features {args.features}: --kind {args.kind} trains on the base features only")
        return train_recurrent_model(args, out, console)
    nights = load_nights(args)
    if not nights:
        raise SleepstreamError("no nights to train on")
    from sleepnet.models.cnn_lstm import ModelConfig  # torch: only once the nights are read
    from sleepnet.models.cnn_lstm_stager import CnnLstmModel, save_model
    from sleepnet.preprocess import PreprocessConfig
    from sleepnet.train.training import PROTOCOL, TrainConfig, evaluate_prepared, prepare_night, split_by_subject, train

    pcfg, mcfg = PreprocessConfig(), ModelConfig()
    train_src, val_src = split_by_subject(nights, args.val_fraction, args.seed)
    with progress_bar(args.quiet) as update:
        prepared_train, prepared_val = [], []
        for i, n in enumerate(train_src + val_src):
            (prepared_train if i < len(train_src) else prepared_val).append(prepare_night(n, pcfg))
            update("preprocessing nights", i + 1, len(nights))
        cfg = TrainConfig(max_passes=args.max_passes or 30, patience=args.patience, seed=args.seed,
                          max_minutes=args.max_minutes)
        net, info = train(prepared_train, prepared_val, mcfg, pcfg, cfg, progress=update)
    model_id = args.model_id or f"cnn-lstm-{args.dataset}-{len(prepared_train)}n-seed{args.seed}"
    model = CnnLstmModel(net, mcfg, preprocess=pcfg, model_id=model_id, source=out)
    val, per = evaluate_prepared(model, prepared_val) if prepared_val else (None, [])
    save_model(out, net, pcfg, model_id, extra={"trained_on": args.dataset})
    metrics = {
        "model_id": model_id, "dataset": args.dataset, "subjects": args.subjects, "seed": args.seed,
        "protocol": PROTOCOL,
        "train_nights": [n.name for n in prepared_train], "validation_nights": [n.name for n in prepared_val],
        "train_epochs": int(sum((n.targets() >= 0).sum() for n in prepared_train)),
        "validation": val.as_dict() if val else None,
        "validation_per_night": {n.name: a.as_dict() for n, a in zip(prepared_val, per)},
        **info,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if not args.quiet:
        console.print(f"trained on {len(prepared_train)} nights ({metrics['train_epochs']} epochs), "
                      f"best pass {info['best_pass']}; weights in {out}/")
        if val:
            for t in agreement_tables(val, title=f"Validation subjects ({len(prepared_val)} nights)"):
                console.print(t)
    return 0
