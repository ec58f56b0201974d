"""`sleepstream score`: batch-score a whole recording with the live path's preprocessing and model."""
from __future__ import annotations

import argparse
from pathlib import Path

from sleepnet.io.derivations import DEFAULT_CHANNEL
from sleepstream.commands import add_normalized_argument, command_doc
from weights import DEFAULT_MODEL

from . import score_archive

HELP = ("score a whole recording (npz, EDF, BDF) epoch by epoch and write a stage CSV; "
        "or many (a folder, a glob, an @list) in parallel into one cohort table")
EXAMPLE = ("sleepstream score ../shared/data/sleep-edf/SC4001E0-PSG-first300s.edf "
           "--hypnogram ../shared/data/sleep-edf/SC4001EC-Hypnogram.edf --out preds.csv\n"
           "  sleepstream score 'archive/**/*-PSG.edf' --out scored/ --jobs 4    "
           "# many nights: scored/cohort.csv")

CHUNK_EPOCHS = 120  # samples are fed to the same preprocessor/scorer in 1-h chunks for progress


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream score``: the recording(s), ``--hypnogram``, ``--channel``,
    ``--normalized``, ``--out``, ``--weights``, ``--session-start``, ``--quiet`` and the archive
    options (:func:`sleepstream.commands.score_archive.add_arguments`).
    """
    p.add_argument("recording", nargs="+",
                   help="recording file: .npz (continuous or windowed), .edf or .bdf; several files, a folder, "
                        "a quoted glob or @FILE (a text file listing recordings) score an archive into --out DIR")
    p.add_argument("--hypnogram", help="true stages (EDF+ annotations, Sleep-EDF txt, text/CSV/TSV)")
    p.add_argument("--channel", default=DEFAULT_CHANNEL,
                   help="EEG channel to score, or a derivation of referential channels: F4-M1, C4-(M1+M2)/2 "
                        "(default: %(default)s; Fpz-Cz matches too; a channel with that exact label wins)")
    add_normalized_argument(p, ": score it with the scale-free model and level-free quality checks")
    p.add_argument("--out", help="stage CSV to write (default: <recording name>_stages.csv here); "
                                 "for several recordings, the folder for their files and cohort.csv")
    p.add_argument("--weights", metavar="NAME|DIR",
                   help=f"a shipped model's name or a weights folder (default: {DEFAULT_MODEL}, the default "
                        "model named in weights/__init__.py; the scale-free model for per-epoch normalised "
                        "input)")
    from .live import add_session_start_argument

    add_session_start_argument(p, live=False)
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    score_archive.add_arguments(p)


@command_doc
def run(args: argparse.Namespace) -> int:
    """Score one recording into a stage CSV (and metrics when labels are known), or an archive.

    Several recordings, a folder, a glob or an @list go to
    :func:`sleepstream.commands.score_archive.run`. One recording is fed through the live
    path's preprocessor and stager in chunks of :data:`CHUNK_EPOCHS` epochs.

    Returns
    -------
    int
        0 when the recording was scored; for an archive, the status of
        :func:`sleepstream.commands.score_archive.run`.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        ``--session-start`` with an archive; a recording shorter than one 30-s epoch or with
        no scorable epoch (:class:`sleepnet.errors.InputFileError`); any error of reading the
        recording, the hypnogram or the weights, or of writing the outputs.
    """
    if score_archive.wanted(args):
        if getattr(args, "session_start", None) is not None:
            from sleepnet.errors import SleepstreamError
            raise SleepstreamError("--session-start applies to one recording; an archive is scored with the "
                                   "model's own default")
        return score_archive.run(args)
    from rich.console import Console

    from sleepnet.io.exports import (
        check_writable,
        metrics_paths,
        refuse_overwriting_inputs,
        write_metrics,
        write_stage_csv,
    )
    from sleepnet.io.hypnograms import read_hypnogram
    from sleepnet.io.recordings import read_recording, require_epochs, with_labels
    from sleepnet.metrics import agreement
    from sleepstream.console import agreement_tables, progress_bar

    args.recording = args.recording[0]
    out = Path(args.out) if args.out else Path(f"{Path(args.recording).stem}_stages.csv")
    flag = f"--out {out}" if args.out else f"the default output {out}"
    refuse_overwriting_inputs(
        [(flag, out), *((f"{flag} (its {kind} file {p.name})", p)
                        for kind, p in zip(("metrics", "confusion"), metrics_paths(out.with_suffix(""))))],
        [("the recording", Path(args.recording)), ("the hypnogram", Path(args.hypnogram) if args.hypnogram else None)])
    check_writable(out)
    rec = read_recording(args.recording, args.channel)
    if args.hypnogram:
        rec = with_labels(rec, read_hypnogram(args.hypnogram, rec.n_epochs))
    require_epochs(rec)
    from sleepnet.normalised import (
        describe_input,
        input_normalisation,
        is_level_free,
        model_for_input,
        nothing_scored_reason,
        quality_thresholds,
    )
    from sleepnet.preprocess import Preprocessor
    from sleepnet.weights import load_model

    normalised_by = input_normalisation(rec.eeg_uv, rec.sfreq, True if args.normalized else None)
    model = load_model(model_for_input(args.weights, normalised_by is not None))
    console = Console()
    if normalised_by and not args.quiet:
        console.print(describe_input(normalised_by, model.model_id, is_level_free(model)), highlight=False,
                      soft_wrap=True)
    pre = Preprocessor(rec.sfreq, model.preprocess, quality_thresholds(normalised_by is not None))
    scorer = model.new_stager() if args.session_start is None else model.new_stager(session_start=args.session_start)
    chunk = int(round(rec.sfreq * 30 * CHUNK_EPOCHS))
    preds = []
    with progress_bar(args.quiet) as update:
        for start in range(0, len(rec.eeg_uv), chunk):
            preds += scorer.score(pre.push(rec.eeg_uv[start:start + chunk]))
            update(f"scoring {Path(rec.source).name}", min(len(rec.eeg_uv), start + chunk), len(rec.eeg_uv))
    write_stage_csv(out, preds)
    n_scored = sum(p.scored for p in preds)
    if not args.quiet:
        start = getattr(scorer, "session_start", None)
        console.print(f"{rec.source}: channel {rec.channel} at {rec.sfreq:g} Hz, {len(preds)} epochs "
                      f"({n_scored} scored, {len(preds) - n_scored} unscored) -> {out}"
                      + (f"; session start {start}" if start else ""))
    if n_scored == 0:
        from sleepnet.errors import InputFileError

        reason = nothing_scored_reason([p.flags for p in preds], rec.eeg_uv, rec.sfreq, normalised_by is not None)
        raise InputFileError(f"{rec.source}: no epoch could be scored: {reason}")
    if rec.labels is not None:
        import numpy as np
        y_pred = np.array([p.stage_code for p in preds])
        a = agreement(rec.labels[:len(preds)], y_pred)
        stem = out.with_suffix("")
        mpath, cpath = write_metrics(stem, a, {"recording": rec.source, "model_id": model.model_id,
                                               "hypnogram": args.hypnogram})
        if not args.quiet:
            for t in agreement_tables(a, title=f"Agreement with {args.hypnogram or 'labels in the file'}"):
                console.print(t)
            console.print(f"metrics: {mpath}  confusion: {cpath}")
    return 0

