"""The night's report: statistics, a hypnogram figure, exports other tools read, the
agreement with a truth hypnogram and the explainability view of classical EEG features.

:func:`write_report` reads a scored night (:mod:`sleepnet.io.night_file`: the live
hypnogram TSV or the batch stage CSV) and writes into one folder:

``<stem>_stats.json``
    sleep statistics (:mod:`sleepnet.report.sleep_stats`, with units and definitions), the
    night's sessions, flags and latencies, and the agreement/features below when asked.
``<stem>_hypnogram.png``
    the hypnogram (W, REM, N1, N2, N3 from the top), the stage probabilities over the
    night (hypnodensity), the truth hypnogram with disagreements, and the features view.
``<stem>_hypnogram.edf``
    EDF+ with only annotations, one ``Sleep stage W/N1/N2/N3/R/?`` annotation per run of
    equal epochs, as the Sleep-EDF and HMC hypnograms (EDFbrowser, MNE's
    ``read_annotations`` and :func:`sleepnet.io.hypnograms.read_hypnogram` read it).
``<stem>_events.tsv`` / ``<stem>_events.json``
    BIDS-style events, one row per epoch: onset (s), duration (s), trial_type (the
    stage), stage, epoch, confidence, flags; ``n/a`` where a value is absent; a JSON
    sidecar describes the columns.
``<stem>_metrics.json`` / ``<stem>_confusion.csv`` (with a truth hypnogram, or labels
    inside the recording's npz)
    the same agreement files as ``sleepstream score``.
``<stem>_features.csv`` / ``<stem>_features_by_stage.csv`` (with the recording)
    relative band powers (delta 0.5-4, theta 4-8, alpha 8-12, sigma 12-16, beta 16-30 Hz,
    as shares of 0.5-30 Hz power), slow-wave index delta/(alpha+beta) and spindle index
    sigma/(alpha+theta) per epoch (:func:`sleepnet.features.relative_band_powers`), and
    per predicted stage their means with the standardised difference (Cohen's d) of
    that stage against all other scored epochs. The two indices are ratios, compared on
    a log10 scale and summarised by their geometric mean. The features are computed
    from the recording's own samples at its own rate (Welch over 4-s windows, which
    detrends each window; no filter is needed for band shares); epochs are matched by
    position from the recording's start.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import InputFileError, SleepstreamError, parameter
from ..io.hypnogram_exports import write_bids_events, write_edf_annotations
from ..io.hypnograms import fit_to_recording, read_hypnogram
from ..io.night_file import Night, read_night
from ..io.recordings import DEFAULT_CHANNEL, read_recording
from ..metrics import Agreement, agreement
from ..weights import describe_model
from .explain import FeatureSummary, explain_features, write_feature_tables
from .figures import write_figure
from .sleep_stats import STAT_DEFINITIONS, STAT_UNITS, SleepStats, sleep_statistics


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` made: the night, its statistics and the files written.

    Parameters
    ----------
    night : Night
        The scored night, as :func:`~sleepnet.io.night_file.read_night` read it.
    stats : SleepStats
        Its sleep statistics.
    out_dir : Path
        The report folder.
    files : dict of str to Path
        The files written, by kind (``stats``, ``png``, ``edf``, ``events``,
        ``events_json``, and ``metrics``/``confusion``, ``features``/``features_by_stage``
        when made).
    truth : numpy.ndarray, optional
        The truth hypnogram fitted to the night, if any.
    truth_source : str, optional
        Where the truth came from.
    agreement : Agreement, optional
        The agreement with the truth, if any.
    features : FeatureSummary, optional
        The explainability view, when the recording was given.
    notes : tuple of str, default ()
        What the report noticed (from reading the night, the models, the features, the offset).
    """

    night: Night
    stats: SleepStats
    out_dir: Path
    files: dict[str, Path]
    truth: np.ndarray | None = None
    truth_source: str | None = None
    agreement: Agreement | None = None
    features: FeatureSummary | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- helpers

def _jsonable(v):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (datetime, Path)):
        return str(v)
    return v


# --------------------------------------------------------------------------- the report

def models_of(night: Night) -> list[str]:
    """Model ids named in the night's session markers (``model=<id>``), in order, once each.

    Parameters
    ----------
    night : Night
        The scored night.

    Returns
    -------
    list of str
        The model ids.
    """
    out: list[str] = []
    for s in night.sessions:
        m = re.search(r"\bmodel=(\S+)", s.text)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def default_out_dir(night_file: str | Path) -> Path:
    """The report folder when none is given: ``<night stem>_report`` beside the night file.

    Parameters
    ----------
    night_file : str or Path
        The night file the report is about (it need not exist yet).

    Returns
    -------
    Path
        The folder (not created here).
    """
    p = Path(night_file)
    return p.with_name(p.stem + "_report")


def write_report(night_file: str | Path, out_dir: str | Path | None = None, hypnogram: str | Path | None = None,
                 recording: str | Path | None = None, channel: str = DEFAULT_CHANNEL,
                 offset_s: float = 0.0) -> ReportResult:
    """Read a scored night and write its report files (see the module docstring).

    Parameters
    ----------
    night_file : path
        The live hypnogram TSV or the batch stage CSV.
    out_dir : path, optional
        Folder for the files (created; default ``<night stem>_report`` beside the night).
    hypnogram : path, optional
        True stages, any format :func:`sleepnet.io.hypnograms.read_hypnogram` reads; fitted to
        the night's length (cut or padded with unscored, as ``score`` does). Without it,
        labels inside the recording's npz are the truth, as for ``score``.
    recording : path, optional
        The recording that was scored (npz/EDF/BDF), for the features view.
    channel : str
        The recording's EEG channel (default ``Fpz-Cz``, which finds ``EEG Fpz-Cz``).
    offset_s : float
        Where the night's first epoch starts in the recording and the truth hypnogram,
        in seconds (a live session that joined a replay late); truth epochs are shifted
        by the nearest whole number of epochs, the features by the exact sample.

    Returns
    -------
    ReportResult
        The night, its statistics, the truth and agreement, the features, and the files
        written.

    Raises
    ------
    SleepstreamError
        One line: an unreadable night, recording or hypnogram (:class:`~sleepnet.errors.InputFileError`),
        an output path that is not a folder or cannot be made, a negative offset, or an
        offset past the truth or the recording.
    """
    night = read_night(night_file)
    out = Path(out_dir) if out_dir is not None else default_out_dir(night_file)
    if out.exists() and not out.is_dir():
        raise SleepstreamError(f"{out}: exists and is not a folder")
    if not (math.isfinite(offset_s) and offset_s >= 0):
        raise SleepstreamError(f"{parameter('offset_s')}={offset_s} must be 0 or more seconds")
    rec = read_recording(recording, channel) if recording is not None else None
    truth, truth_source = None, None
    skip = int(round(offset_s / night.epoch_s))          # truth epochs before the night's start
    if hypnogram is not None:
        truth, truth_source = read_hypnogram(hypnogram), str(hypnogram)
    elif rec is not None and rec.labels is not None:
        truth, truth_source = rec.labels.astype(np.int8), f"labels in {rec.source}"
    if truth is not None:
        if skip >= len(truth):
            raise InputFileError(f"{truth_source}: the offset {offset_s:g} s is past its {len(truth)} epochs")
        truth = fit_to_recording(truth[skip:], night.n_epochs, truth_source)
    features = explain_features(night, rec, offset_s) if rec is not None else None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SleepstreamError(f"{out}: cannot create the report folder ({exc.strerror})") from None
    stem = out / Path(night_file).stem
    stats = sleep_statistics(night.stages, night.epoch_s)
    files: dict[str, Path] = {}
    agree = None
    notes = list(night.notes) + [f"scored by {describe_model(m)}" for m in models_of(night)]
    if truth is not None:
        from ..io.exports import write_metrics

        agree = agreement(truth, night.stages)
        files["metrics"], files["confusion"] = write_metrics(
            stem, agree, {"night": night.source, "hypnogram": truth_source})
    if features is not None:
        files["features"], files["features_by_stage"] = write_feature_tables(stem, night, features)
        if features.note:
            notes.append(features.note)
    files["edf"] = write_edf_annotations(stem.with_name(stem.name + "_hypnogram.edf"), night.stages, night.start_wall)
    files["events"], files["events_json"] = write_bids_events(stem.with_name(stem.name + "_events.tsv"), night)
    files["png"] = write_figure(stem.with_name(stem.name + "_hypnogram.png"), night, stats, truth, agree, features)
    if offset_s:
        notes.append(f"night matched to the recording/truth from {offset_s:g} s on")
    files["stats"] = _write_stats_json(stem.with_name(stem.name + "_stats.json"), night, stats, agree,
                                       features, truth_source, notes)
    return ReportResult(night=night, stats=stats, out_dir=out, files=files, truth=truth,
                        truth_source=truth_source, agreement=agree, features=features, notes=tuple(notes))


def _write_stats_json(path: Path, night: Night, stats: SleepStats, agree: Agreement | None,
                      features: FeatureSummary | None, truth_source: str | None, notes: list[str]) -> Path:
    lat = night.latency_ms[np.isfinite(night.latency_ms)]
    body = {
        "night": night.source,
        "kind": night.kind,
        "epoch_s": night.epoch_s,
        "n_epochs": night.n_epochs,
        "epochs_received": int(night.received.sum()),
        "start": night.start_wall.isoformat() if night.start_wall else None,
        "sessions": [{"slot": s.slot, "marker": s.text, "wall": s.wall.isoformat() if s.wall else None}
                     for s in night.sessions],
        "skipped_lines": night.skipped_lines,
        "notes": notes,
        "statistics": stats.as_dict(),
        "units": STAT_UNITS,
        "definitions": STAT_DEFINITIONS,
        "flags": night.flag_counts(),
        "latency_ms": ({"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                        "max": float(lat.max())} if len(lat) else None),
    }
    if agree is not None:
        body["agreement"] = {"truth": truth_source, **agree.as_dict()}
    if features is not None:
        body["features"] = features.as_dict()
    path.write_text(json.dumps(_jsonable(body), indent=2, allow_nan=False) + "\n")
    return path
