"""The report's figure: the hypnogram, the stage probabilities over the night
(hypnodensity), the truth hypnogram with disagreements and the features view (PNG).
"""
from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..io.night_file import Night
from ..metrics import Agreement
from ..stages import HYPNOGRAM_ROWS, N_STAGES, STAGE_COLOURS, STAGES, stage_name, stage_runs
from .explain import FeatureSummary
from .sleep_stats import SleepStats

#: Hypnogram levels from the top (colours, levels and EDF+ texts: one table in sleepnet.stages).
LEVELS: tuple[str, ...] = HYPNOGRAM_ROWS


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
    """The report's PNG: hypnogram, hypnodensity, truth (optional), features (optional).

    Parameters
    ----------
    path : Path
        The PNG to write.
    night : Night
        The scored night.
    stats : SleepStats
        Its sleep statistics.
    truth : numpy.ndarray, optional
        True stage codes per slot; adds the truth panel with disagreements marked.
    agree : Agreement, optional
        The agreement with ``truth``, shown in that panel's title.
    features : FeatureSummary, optional
        Adds the features view.

    Returns
    -------
    Path
        ``path``.
    """
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
                k = min(5, len(v))      # 'same' gives max(len(v), k) values: no longer than the night
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
