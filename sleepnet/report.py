"""The night's report: statistics, a hypnogram figure, exports other tools read, the
agreement with a truth hypnogram and the explainability view of classical EEG features.

:func:`write_report` reads a scored night (:mod:`sleepnet.night_file`: the live
hypnogram TSV or the batch stage CSV) and writes into one folder:

``<stem>_stats.json``
    sleep statistics (:mod:`sleepnet.sleep_stats`, with units and definitions), the
    night's sessions, flags and latencies, and the agreement/features below when asked.
``<stem>_hypnogram.png``
    the hypnogram (W, REM, N1, N2, N3 from the top), the stage probabilities over the
    night (hypnodensity), the truth hypnogram with disagreements, and the features view.
``<stem>_hypnogram.edf``
    EDF+ with only annotations, one ``Sleep stage W/N1/N2/N3/R/?`` annotation per run of
    equal epochs, as the Sleep-EDF and HMC hypnograms (EDFbrowser, MNE's
    ``read_annotations`` and :func:`sleepnet.hypnogram.read_hypnogram` read it).
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

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .errors import InputFileError, SleepstreamError
from .features import EXPLAIN_FEATURE_NAMES, relative_band_powers
from .hypnogram import fit_to_recording, read_hypnogram
from .metrics import Agreement, agreement
from .night_file import Night, read_night
from .readers import DEFAULT_CHANNEL, Recording, read_recording
from .sleep_stats import STAT_DEFINITIONS, STAT_UNITS, SleepStats, sleep_statistics
from .stages import (EPOCH_S, HYPNOGRAM_ROWS, N_STAGES, STAGE_COLOURS, STAGES, UNSCORED, edf_stage_annotations,
                     stage_name, stage_runs)
from .weights import describe_model

log = logging.getLogger(__name__)

#: Hypnogram levels from the top (colours, levels and EDF+ texts: one table in sleepnet.stages).
LEVELS: tuple[str, ...] = HYPNOGRAM_ROWS
_LOG_FEATURES = ("slow_wave_index", "spindle_index")   # ratios: compared on a log10 scale
N_DISTINCTIVE = 3


@dataclass(frozen=True)
class FeatureSummary:
    """The explainability view: classical features per epoch and per predicted stage.

    per_epoch: (n_slots, 7) features (NaN where no recording epoch or a gap).
    means: stage -> feature -> mean (relative powers as shares 0-1; the indices as
    geometric means). effect: stage -> feature -> Cohen's d against all other scored
    epochs (indices on log10). distinctive: stage -> the features with the largest |d|.
    counts: stage -> epochs with features.
    """

    recording: str
    channel: str
    sfreq: float
    names: tuple[str, ...]
    per_epoch: np.ndarray
    means: dict[str, dict[str, float]]
    effect: dict[str, dict[str, float]]
    distinctive: dict[str, list[tuple[str, float]]]
    counts: dict[str, int]
    n_matched: int
    note: str = ""

    def as_dict(self) -> dict:
        return {"recording": self.recording, "channel": self.channel, "sfreq_hz": self.sfreq,
                "epochs_matched": self.n_matched, "note": self.note, "counts": self.counts,
                "means": self.means, "cohens_d_vs_other_stages": self.effect,
                "distinctive": {s: [{"feature": f, "d": d} for f, d in v] for s, v in self.distinctive.items()}}


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` made: the night, its statistics and the files written."""

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


# --------------------------------------------------------------------------- exports

def write_edf_annotations(path: Path, codes: np.ndarray, start: datetime | None = None,
                          epoch_s: float = EPOCH_S) -> Path:
    """EDF+ file holding only the hypnogram as annotations (one per run of equal stages).

    Texts as the Sleep-EDF/HMC hypnograms: ``Sleep stage W``, ``N1``, ``N2``, ``N3``,
    ``R`` and ``?`` for unscored epochs. ``start`` sets the file's start date and time.
    """
    from edfio import Edf, EdfAnnotation, Recording

    anns = [EdfAnnotation(onset, duration, text) for onset, duration, text in edf_stage_annotations(codes, epoch_s)]
    kwargs = {}
    if start is not None:
        kwargs = {"recording": Recording(startdate=start.date()), "starttime": start.time().replace(microsecond=0)}
    Edf(signals=[], annotations=anns, **kwargs).write(path)
    return path


BIDS_EVENT_COLUMNS = ("onset", "duration", "trial_type", "stage", "epoch", "confidence", "flags")


def write_bids_events(path: Path, night: Night) -> tuple[Path, Path]:
    """BIDS-style ``_events.tsv`` (one row per 30-s epoch) and its JSON sidecar."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(BIDS_EVENT_COLUMNS)
        for i in range(night.n_epochs):
            name = stage_name(int(night.stages[i]))
            conf = night.confidence[i]
            w.writerow([f"{i * night.epoch_s:.1f}", f"{night.epoch_s:.1f}", name, name,
                        int(night.epoch_numbers[i]) if night.received[i] else "n/a",
                        f"{conf:.4f}" if math.isfinite(conf) else "n/a",
                        "|".join(night.flags[i]) if night.flags[i] else ("n/a" if not night.received[i] else "")])
    sidecar = path.with_suffix(".json")
    levels = {s: f"sleep stage {s} (AASM)" for s in STAGES}
    levels["UNS"] = "unscored: gap, flat or artefacted signal, or no scorer output for this epoch"
    sidecar.write_text(json.dumps({
        "onset": {"Description": "start of the 30-s epoch from the start of the night", "Units": "s"},
        "duration": {"Description": "epoch length", "Units": "s"},
        "trial_type": {"Description": "sleep stage scored by sleepstream", "Levels": levels},
        "stage": {"Description": "same as trial_type", "Levels": levels},
        "epoch": {"Description": "epoch number in the scored night file"},
        "confidence": {"Description": "largest of the five stage probabilities"},
        "flags": {"Description": "quality flags, '|'-separated: warmup, gap, flat, clipped, artefact"},
    }, indent=2) + "\n")
    return path, sidecar


# --------------------------------------------------------------------------- features

def _cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = a.var(ddof=1), b.var(ddof=1)
    pooled = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else math.nan


def explain_features(night: Night, rec: Recording, offset_s: float = 0.0) -> FeatureSummary:
    """Classical features of the recording's epochs, summarised per predicted stage.

    The night's slot i is the recording's 30 s from ``offset_s + 30 i`` (``offset_s``:
    where the night started in the recording; 0 when it was scored from the start).
    """
    spe = int(round(rec.sfreq * EPOCH_S))
    first = int(round(offset_s * rec.sfreq))
    n_rec = max(0, (len(rec.eeg_uv) - first) // spe)
    if rec.n_epochs == 0:
        raise InputFileError(f"{rec.source}: shorter than one 30-s epoch ({rec.duration_s:.1f} s)")
    if n_rec == 0:
        raise InputFileError(f"{rec.source}: the offset {offset_s:g} s is past the recording's "
                             f"{rec.duration_s:.0f} s")
    if rec.sfreq < 60:
        raise InputFileError(f"{rec.source}: {rec.sfreq:g} Hz is too slow for band powers up to 30 Hz")
    n = min(n_rec, night.n_epochs)
    note = ""
    if abs(n_rec - night.n_epochs) > 1:
        note = (f"recording has {n_rec} epochs{f' after {offset_s:g} s' if first else ''} and the night "
                f"{night.n_epochs}; features for the first {n}, matched by position")
        log.warning("%s: %s", rec.source, note)
    epochs = rec.eeg_uv[first: first + n * spe].astype(np.float64).reshape(n, spe)
    ok = np.all(np.isfinite(epochs), axis=1)
    feats = np.full((night.n_epochs, len(EXPLAIN_FEATURE_NAMES)), np.nan)
    if ok.any():
        feats[:n][ok] = relative_band_powers(epochs[ok], sfreq=rec.sfreq)
    names = tuple(EXPLAIN_FEATURE_NAMES)
    comp = feats.copy()                     # the scale the comparison is made on
    for j, name in enumerate(names):
        if name in _LOG_FEATURES:
            comp[:, j] = np.log10(np.maximum(comp[:, j], 1e-6))
    usable = np.all(np.isfinite(comp), axis=1) & (night.stages >= 0)
    means: dict[str, dict[str, float]] = {}
    effect: dict[str, dict[str, float]] = {}
    distinctive: dict[str, list[tuple[str, float]]] = {}
    counts: dict[str, int] = {}
    for k, s in enumerate(STAGES):
        mine = usable & (night.stages == k)
        rest = usable & (night.stages != k)
        counts[s] = int(mine.sum())
        if not mine.any():
            continue
        means[s] = {}
        effect[s] = {}
        for j, name in enumerate(names):
            m = comp[mine, j].mean()
            means[s][name] = float(10 ** m) if name in _LOG_FEATURES else float(m)
            effect[s][name] = _cohens_d(comp[mine, j], comp[rest, j])
        ranked = sorted(((f, d) for f, d in effect[s].items() if math.isfinite(d)), key=lambda fd: -abs(fd[1]))
        distinctive[s] = ranked[:N_DISTINCTIVE]
    return FeatureSummary(recording=rec.source, channel=rec.channel, sfreq=rec.sfreq, names=names,
                          per_epoch=feats, means=means, effect=effect, distinctive=distinctive,
                          counts=counts, n_matched=int(n), note=note)


def _write_features(stem: Path, night: Night, fs: FeatureSummary) -> tuple[Path, Path]:
    per = stem.with_name(stem.name + "_features.csv")
    with open(per, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "onset_s", "stage", *fs.names])
        for i in range(night.n_epochs):
            row = fs.per_epoch[i]
            w.writerow([i, f"{i * night.epoch_s:.1f}", stage_name(int(night.stages[i])),
                        *("" if not math.isfinite(v) else f"{v:.6g}" for v in row)])
    by = stem.with_name(stem.name + "_features_by_stage.csv")
    with open(by, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stage", "epochs", *(f"mean_{f}" for f in fs.names), *(f"d_{f}" for f in fs.names)])
        for s in STAGES:
            if s not in fs.means:
                w.writerow([s, 0, *[""] * (2 * len(fs.names))])
                continue
            w.writerow([s, fs.counts[s], *(f"{fs.means[s][f]:.6g}" for f in fs.names),
                        *("" if not math.isfinite(fs.effect[s][f]) else f"{fs.effect[s][f]:.3f}" for f in fs.names)])
    return per, by


# --------------------------------------------------------------------------- figure

def _time_axis(night: Night):
    """(x in hours from the start, tick formatter) for the figure."""
    from matplotlib.ticker import FuncFormatter

    start = night.start_wall

    def fmt(h: float, _pos=None) -> str:
        if start is not None:
            return (start + timedelta(hours=h)).strftime("%H:%M")
        return f"{int(h)}:{int(round((h % 1) * 60)) % 60:02d}"

    return FuncFormatter(fmt), ("clock time" if start is not None else "time from start (h:mm)")


def _draw_hypnogram(ax, codes: np.ndarray, epoch_h: float, title: str) -> None:
    level = {STAGES.index(s): len(LEVELS) - 1 - i for i, s in enumerate(LEVELS)}   # W top
    y = np.array([level.get(int(c), np.nan) for c in codes], dtype=float)
    x = np.arange(len(codes) + 1) * epoch_h
    ys = np.r_[y, y[-1] if len(y) else np.nan]
    ax.step(x, ys, where="post", color="#555555", linewidth=0.7)
    runs = stage_runs(np.asarray(codes, dtype=np.int64))
    for c, s, n in zip(runs.codes.tolist(), runs.starts.tolist(), runs.lengths.tolist()):
        if c < 0:
            ax.axvspan(s * epoch_h, (s + n) * epoch_h, color=STAGE_COLOURS["UNS"], alpha=0.25, linewidth=0)
        else:
            ax.hlines(level[c], s * epoch_h, (s + n) * epoch_h, color=STAGE_COLOURS[stage_name(c)],
                      linewidth=5 if stage_name(c) == "REM" else 3)
    ax.set_yticks(range(len(LEVELS)), list(reversed(LEVELS)))
    ax.set_ylim(-0.6, len(LEVELS) - 0.4)
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)


def write_figure(path: Path, night: Night, stats: SleepStats, truth: np.ndarray | None = None,
                 agree: Agreement | None = None, features: FeatureSummary | None = None) -> Path:
    """The report's PNG: hypnogram, hypnodensity, truth (optional), features (optional)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = ["hyp", "dens"] + (["truth"] if truth is not None else []) + (["bands"] if features else [])
    heights = {"hyp": 2.2, "dens": 1.4, "truth": 2.0, "bands": 1.6}
    total_h = sum(heights[p] for p in panels) + (3.0 if features else 0) + 1.4
    fig = Figure(figsize=(12, total_h), dpi=100)
    FigureCanvasAgg(fig)
    n_rows = len(panels) + (1 if features else 0)
    gs = fig.add_gridspec(n_rows, 1, height_ratios=[heights[p] for p in panels] + ([3.0] if features else []),
                          hspace=0.55, left=0.09, right=0.97, top=1 - 0.9 / total_h, bottom=0.5 / total_h)
    epoch_h = night.epoch_s / 3600.0
    formatter, xlabel = _time_axis(night)
    x_end = max(night.n_epochs * epoch_h, epoch_h)
    axes = []
    for r, p in enumerate(panels):
        ax = fig.add_subplot(gs[r], sharex=axes[0] if axes else None)
        axes.append(ax)
        if p == "hyp":
            _draw_hypnogram(ax, night.stages, epoch_h, f"scored by sleepstream · {Path(night.source).name}")
        elif p == "dens":
            x = np.arange(night.n_epochs + 1) * epoch_h
            probs = np.nan_to_num(night.probabilities, nan=0.0)
            probs = np.vstack([probs, probs[-1:]])
            cum = np.zeros(len(x))
            for k, st in enumerate(STAGES):
                ax.fill_between(x, cum, cum + probs[:, k], step="post", color=STAGE_COLOURS[st],
                                linewidth=0, label=st)
                cum = cum + probs[:, k]
            ax.set_ylim(0, 1)
            ax.set_ylabel("p(stage)")
            ax.set_title("stage probabilities (hypnodensity); white = unscored", loc="left", fontsize=10)
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=5, fontsize=7, frameon=False,
                      borderaxespad=0, handlelength=1.0, columnspacing=0.8, title=None)
        elif p == "truth":
            title = "truth"
            if agree is not None and agree.n_epochs:
                title += f" · accuracy {agree.accuracy * 100:.1f} %, kappa {agree.kappa:.2f}, n={agree.n_epochs}"
            _draw_hypnogram(ax, truth, epoch_h, title + " · red ticks: disagreement")
            diff = (truth >= 0) & (night.stages >= 0) & (truth != night.stages)
            idx = np.flatnonzero(diff)
            ax.vlines((idx + 0.5) * epoch_h, -0.6, -0.3, color="#d62728", linewidth=0.8)
        elif p == "bands":
            x = (np.arange(night.n_epochs) + 0.5) * epoch_h
            for j, name in enumerate(features.names[:5]):
                v = features.per_epoch[:, j]
                k = 5
                smooth = np.convolve(np.nan_to_num(v), np.ones(k) / k, mode="same")
                smooth[~np.isfinite(v)] = np.nan
                ax.plot(x, smooth, linewidth=0.9, label=name)
            ax.set_ylabel("share of power")
            ax.set_title(f"relative band power of {features.channel} (5-epoch mean)", loc="left", fontsize=10)
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=5, fontsize=7, frameon=False,
                      borderaxespad=0, handlelength=1.0, columnspacing=0.8)
        ax.set_xlim(0, x_end)
        ax.xaxis.set_major_formatter(formatter)
    axes[-1].set_xlabel(xlabel)
    d = stats.as_dict()

    def m(k: str) -> str:
        return "—" if not math.isfinite(d[k]) else f"{d[k]:.1f}"

    fig.suptitle(f"TIB {m('TIB')} min · TST {m('TST')} min · SE {m('SE')} % · SOL {m('SOL')} min · "
                 f"WASO {m('WASO')} min · REM latency {m('Lat_REM')} min · "
                 f"N1/N2/N3/REM {m('%N1')}/{m('%N2')}/{m('%N3')}/{m('%REM')} % of TST · "
                 f"{stats.n_awakenings} awakenings", fontsize=9.5, x=0.09, ha="left")
    if features:
        ax = fig.add_subplot(gs[len(panels)])
        mat = np.array([[features.effect.get(s, {}).get(f, np.nan) for f in features.names] for s in STAGES])
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
        ax.set_yticks(range(N_STAGES), [f"{s} (n={features.counts.get(s, 0)})" for s in STAGES])
        ax.set_xticks(range(len(features.names)), features.names)
        for i in range(N_STAGES):
            for j in range(len(features.names)):
                if math.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:+.1f}", ha="center", va="center", fontsize=8,
                            color="white" if abs(mat[i, j]) > 1.2 else "black")
        ax.set_title("what sets each predicted stage apart: Cohen's d of each feature vs the other stages",
                     loc="left", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.savefig(path, dpi=100)
    return path


# --------------------------------------------------------------------------- the report

def models_of(night: Night) -> list[str]:
    """Model ids named in the night's session markers (``model=<id>``), in order, once each."""
    out: list[str] = []
    for s in night.sessions:
        m = re.search(r"\bmodel=(\S+)", s.text)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def default_out_dir(night_file: str | Path) -> Path:
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
        True stages, any format :func:`sleepnet.hypnogram.read_hypnogram` reads; fitted to
        the night's length (cut or padded with unscored, as ``score`` does). Without it,
        labels inside the recording's npz are the truth, as for ``score``.
    recording : path, optional
        The recording that was scored (npz/EDF/BDF), for the features view.
    channel : str
        The recording's EEG channel (default ``EEG Fpz-Cz``).
    offset_s : float
        Where the night's first epoch starts in the recording and the truth hypnogram,
        in seconds (a live session that joined a replay late); truth epochs are shifted
        by the nearest whole number of epochs, the features by the exact sample.
    """
    night = read_night(night_file)
    out = Path(out_dir) if out_dir is not None else default_out_dir(night_file)
    if out.exists() and not out.is_dir():
        raise SleepstreamError(f"{out}: exists and is not a folder")
    if not (math.isfinite(offset_s) and offset_s >= 0):
        raise SleepstreamError(f"offset must be 0 or more seconds, got {offset_s}")
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
        from .outputs import write_metrics

        agree = agreement(truth, night.stages)
        files["metrics"], files["confusion"] = write_metrics(
            stem, agree, {"night": night.source, "hypnogram": truth_source})
    if features is not None:
        files["features"], files["features_by_stage"] = _write_features(stem, night, features)
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
