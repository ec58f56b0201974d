"""The live screen as a pure function: :func:`render` turns a
:class:`~scorer.display_state.DisplayState` and a terminal size into a Rich renderable.

Nothing here touches the terminal or changes the state; the sink that owns the terminal
is :class:`scorer.display.DisplaySink`.

What the screen shows (top to bottom)
-------------------------------------
* a header: source stream, rate, channel, "receiving" or SIGNAL LOST, time since start;
  NOT RECORDING (white on red, with the rows kept in memory) while the hypnogram file
  cannot be written, and the same with the reason on the stream-health line;
* the current stage in large coloured letters with its five probabilities as bars, the
  confidence and the epoch's quality flags; beside it the night's running sleep
  statistics (:mod:`sleepnet.report.sleep_stats`) and, when a truth stream is present, the
  running accuracy and Cohen's kappa (and a confusion matrix where there is room);
* the hypnogram of the night so far, one row per stage (W, REM, N1, N2, N3 from the
  top, as clinical hypnograms are drawn), newest epoch at the right, under a clock-time
  axis. While the night fits, each column is one 30-s epoch. When it no longer fits,
  the most recent epochs keep one column each (right of a dotted separator) and the
  older ones are summarised k epochs per column: the most frequent stage of the column
  is a full block, other stages present in it are shaded;
* the last 30 s of signal as a Braille trace (min/max per column, so spikes are never
  lost) at a fixed sensitivity chosen from 10-5000 µV, with the current flags;
* stream health: samples received, gaps and missing samples, latency from epoch end
  to published stage (last, median and max), epochs scored and unscored.

Clock times: the first record fixes the wall-clock time of its epoch's start
(arrival time - latency - 30 s); epoch i then starts 30 s x i later. In real time this
is the wall clock; in a fast replay it is the clock of the night being replayed, as if
it had started when the replay did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from sleepnet.metrics import Agreement
from sleepnet.report.sleep_stats import format_minutes
from sleepnet.stages import EPOCH_S, HYPNOGRAM_ROWS, N_STAGES, STAGE_COLOURS, STAGES, UNSCORED, UNSCORED_NAME

from .display_state import DisplayState
from .records import ScoredEpoch

#: Stage colours: the report's (one table, sleepnet.stages.STAGE_COLOURS), as Rich styles.
STAGE_STYLE: dict[str, str] = STAGE_COLOURS
STAGE_LONG: dict[str, str] = {
    "W": "wake", "N1": "NREM 1", "N2": "NREM 2", "N3": "NREM 3, slow-wave sleep", "REM": "REM sleep",
    UNSCORED_NAME: "unscored",
}
FLAG_STYLE: dict[str, str] = {
    "warmup": "bright_yellow", "gap": "bold bright_red", "flat": "bold bright_red", "clipped": "bold bright_yellow",
    "artefact": "bold bright_yellow",
}
TRACE_SCALES_UV: tuple[float, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


# --------------------------------------------------------------------------- helpers

def _fmt_hms(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--:--"
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _clock(state: DisplayState, epoch_offset: float) -> str:
    """HH:MM:SS of the start of epoch ``first_epoch + epoch_offset``."""
    if state.anchor_wall_s is None:
        return "--:--:--"
    return datetime.fromtimestamp(state.anchor_wall_s + epoch_offset * EPOCH_S).strftime("%H:%M:%S")


def _pct(v: float, digits: int = 1) -> str:
    return "—" if not math.isfinite(v) else f"{v:.{digits}f} %"


_EIGHTHS = " ▏▎▍▌▋▊▉"


def _bar(fraction: float, width: int) -> tuple[str, str]:
    """(filled, rest) strings of a horizontal bar with 1/8-cell resolution."""
    if not math.isfinite(fraction):
        return "", "·" * width
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    part = int((cells - full) * 8)
    filled = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return filled, "·" * (width - len(filled))


# Large letters: 6 pixel rows packed into 3 text rows with half blocks.
_PIXELS: dict[str, tuple[str, ...]] = {
    "W": ("X...X", "X...X", "X.X.X", "X.X.X", "XX.XX", "X...X"),
    "N": ("X...X", "XX..X", "X.X.X", "X..XX", "X...X", "X...X"),
    "1": (".X.", "XX.", ".X.", ".X.", ".X.", "XXX"),
    "2": (".XX.", "X..X", "...X", "..X.", ".X..", "XXXX"),
    "3": ("XXX.", "...X", ".XX.", "...X", "...X", "XXX."),
    "R": ("XXX.", "X..X", "XXX.", "X.X.", "X..X", "X..X"),
    "E": ("XXXX", "X...", "XXX.", "X...", "X...", "XXXX"),
    "M": ("X...X", "XX.XX", "X.X.X", "X...X", "X...X", "X...X"),
    "U": ("X..X", "X..X", "X..X", "X..X", "X..X", ".XX."),
    "S": (".XXX", "X...", ".XX.", "...X", "...X", "XXX."),
    "-": ("...", "...", "XXX", "...", "...", "..."),
}
_HALF = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def big_text(word: str) -> list[str]:
    """Three text rows spelling ``word`` in half-block letters.

    Parameters
    ----------
    word : str
        A stage name (W, N1-N3, REM, UNS); a character without a glyph is drawn as ``-``.

    Returns
    -------
    list of str
        Three rows of the same width (6 pixel rows, two per text row).
    """
    rows = ["", "", ""]
    for n, ch in enumerate(word):
        px = _PIXELS.get(ch.upper(), _PIXELS["-"])
        for r in range(3):
            top, bot = px[2 * r], px[2 * r + 1]
            rows[r] += ("" if n == 0 else " ") + "".join(
                _HALF[(a == "X", b == "X")] for a, b in zip(top, bot))
    return rows


_BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.int64)


def braille_trace(x_uv: np.ndarray, width: int, rows: int, scale_uv: float) -> list[str]:
    """Draw a signal as ``rows`` lines of ``width`` Braille characters.

    Each of the 2*width dot columns spans the min..max of its samples, from -scale_uv
    (bottom) to +scale_uv (top), clipped; columns with no finite sample stay blank.

    Parameters
    ----------
    x_uv : numpy.ndarray
        The signal, µV, oldest first (NaN where missing).
    width : int
        Characters per line (at least 1).
    rows : int
        Lines (at least 1); each holds 4 dot rows.
    scale_uv : float
        The half-height of the trace, µV.

    Returns
    -------
    list of str
        ``rows`` strings of ``width`` Braille characters, top line first (all blank for
        an empty signal).
    """
    width, rows = max(1, width), max(1, rows)
    ncol, nrow = 2 * width, 4 * rows
    x = np.asarray(x_uv, dtype=np.float64)
    if len(x) == 0:
        return [chr(0x2800) * width for _ in range(rows)]
    starts = (np.arange(ncol) * len(x)) // ncol
    starts = np.minimum(starts, len(x) - 1)
    with np.errstate(invalid="ignore"):
        hi = np.fmax.reduceat(x, starts)
        lo = np.fmin.reduceat(x, starts)
    valid = np.isfinite(hi) & np.isfinite(lo)
    hi = np.clip(np.where(valid, hi, 0.0), -scale_uv, scale_uv)
    lo = np.clip(np.where(valid, lo, 0.0), -scale_uv, scale_uv)
    y_hi = np.rint((scale_uv - hi) / (2 * scale_uv) * (nrow - 1)).astype(int)
    y_lo = np.rint((scale_uv - lo) / (2 * scale_uv) * (nrow - 1)).astype(int)
    r = np.arange(nrow)[:, None]
    dots = (r >= y_hi[None, :]) & (r <= y_lo[None, :]) & valid[None, :]
    cells = dots.reshape(rows, 4, width, 2)
    codes = (cells * _BRAILLE_BITS[None, :, None, :]).sum(axis=(1, 3)) + 0x2800
    return ["".join(map(chr, row)) for row in codes.tolist()]


def trace_scale_uv(x_uv: np.ndarray) -> float:
    """The smallest sensitivity in ``TRACE_SCALES_UV`` that holds 98 % of the signal.

    Parameters
    ----------
    x_uv : numpy.ndarray
        The signal, µV (non-finite samples are left out).

    Returns
    -------
    float
        The sensitivity, µV: the 98th percentile of ``|x|`` rounded up to a scale (the
        largest, 5000 µV, when none holds it; 100 µV without a finite sample).
    """
    x = np.asarray(x_uv, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return TRACE_SCALES_UV[3]
    amp = float(np.percentile(np.abs(x), 98))
    return next((s for s in TRACE_SCALES_UV if s >= amp), TRACE_SCALES_UV[-1])


# --------------------------------------------------------------------------- hypnogram strip

SEPARATOR = -2     # StripColumn.major of the column between the older and the recent zone


@dataclass(frozen=True)
class StripColumn:
    """One column of the hypnogram strip: epochs [start, stop) since the first epoch.

    Parameters
    ----------
    start, stop : int
        The column's epochs, [start, stop), counted from the first epoch held (equal for
        the separator).
    major : int
        The most frequent stage code (-1 mostly unscored, -2 the separator).
    present : frozenset of int
        Every scored stage code in the column.
    """

    start: int
    stop: int
    major: int                 # most frequent stage code (-1 mostly unscored, -2 separator)
    present: frozenset[int]    # every scored stage code in the column


def strip_columns(codes: list[int] | np.ndarray, width: int) -> list[StripColumn]:
    """Lay ``codes`` out on at most ``width`` columns, newest at the right.

    While the night fits, one column per epoch. Otherwise the recent zone keeps at least
    a third of the width at one epoch per column, then comes a separator column
    (``major == SEPARATOR``), and the older zone on the left shows k epochs per column
    (k as small as fits; its first column may hold fewer).

    Parameters
    ----------
    codes : list of int or numpy.ndarray
        Stage codes per epoch, oldest first (-1 unscored).
    width : int
        Columns available (at least 3 are used).

    Returns
    -------
    list of StripColumn
        The columns, oldest at the left.
    """
    c = np.asarray(codes, dtype=np.int64)
    n, width = len(c), max(3, width)

    def single(i: int) -> StripColumn:
        v = int(c[i])
        return StripColumn(i, i + 1, v, frozenset() if v < 0 else frozenset((v,)))

    if n <= width:
        return [single(i) for i in range(n)]
    avail = width - 1
    recent = max(1, avail // 3)
    k = math.ceil((n - recent) / (avail - recent))
    while recent + 1 < n and recent + 1 + math.ceil((n - recent - 1) / k) <= avail:
        recent += 1                                # slack columns go to the recent zone
    boundary = n - recent
    n_old = math.ceil(boundary / k)
    pad = n_old * k - boundary                     # the first column holds k - pad epochs
    old = np.concatenate([np.full(pad, -9, dtype=np.int64), c[:boundary]]).reshape(n_old, k)
    counts = (old[:, :, None] == np.arange(N_STAGES)[None, None, :]).sum(axis=1)   # (n_old, 5)
    n_in = (old != -9).sum(axis=1)
    scored = counts.sum(axis=1)
    major = np.where(scored * 2 >= n_in, counts.argmax(axis=1), UNSCORED)
    cols: list[StripColumn] = []
    for j in range(n_old):
        stop = boundary - (n_old - 1 - j) * k
        cols.append(StripColumn(max(0, stop - k), stop, int(major[j]),
                                frozenset(np.flatnonzero(counts[j]).tolist())))
    cols.append(StripColumn(boundary, boundary, SEPARATOR, frozenset()))
    cols += [single(i) for i in range(boundary, n)]
    return cols


_TICK_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def _axis(state: DisplayState, cols: list[StripColumn]) -> str:
    """A clock-time axis under the strip: each zone's first column gets its start time,
    then ticks at round times (every 1 min to 6 h, whatever leaves room for the labels)."""
    n = len(cols)
    axis = [" "] * n
    if not n or state.anchor_wall_s is None:
        return "".join(axis)
    t0 = state.anchor_wall_s
    free_from = 0

    def place(j: int, t: float) -> bool:
        nonlocal free_from
        label = "╵" + datetime.fromtimestamp(t).strftime("%H:%M")
        if j < free_from or j + len(label) > n:
            return False
        axis[j:j + len(label)] = label
        free_from = j + len(label) + 1
        return True

    zones: list[list[int]] = [[]]
    for j, col in enumerate(cols):
        if col.major == SEPARATOR:
            zones.append([])
        else:
            zones[-1].append(j)
    for zone in zones:
        if not zone:
            continue
        per_col_s = (cols[zone[0]].stop - cols[zone[0]].start) * EPOCH_S
        per_col_s = max(per_col_s, (cols[zone[-1]].stop - cols[zone[-1]].start) * EPOCH_S)
        step = next((s for s in _TICK_STEPS_S if s / per_col_s >= 8), _TICK_STEPS_S[-1])
        place(zone[0], t0 + cols[zone[0]].start * EPOCH_S)
        for j in zone[1:]:
            a, b = t0 + cols[j].start * EPOCH_S, t0 + cols[j].stop * EPOCH_S
            tick = math.ceil(a / step) * step
            if tick < b:
                place(j, tick)
    return "".join(axis)


def _runs(cells: list[tuple[str, str]]) -> Text:
    """Join (glyph, style) cells, one span per run of equal style."""
    t = Text()
    i = 0
    while i < len(cells):
        j = i
        while j < len(cells) and cells[j][1] == cells[i][1]:
            j += 1
        t.append("".join(g for g, _ in cells[i:j]), style=cells[i][1] or None)
        i = j
    return t


def render_hypnogram(state: DisplayState, width: int) -> list[Text]:
    """Five stage rows (W, REM, N1, N2, N3 from the top) and a clock-time axis.

    A full block is the stage of the column (its most frequent stage when it summarises
    several epochs), a light shade another stage present in it, a dot an unscored epoch,
    ┊ the start of the one-epoch-per-column zone.

    Parameters
    ----------
    state : DisplayState
        The codes held and the wall-clock anchor.
    width : int
        Characters per row, the 4-character stage labels included.

    Returns
    -------
    list of rich.text.Text
        Six lines: the five stage rows, then the axis.
    """
    label_w = 4
    cols = strip_columns(state.codes, max(3, width - label_w))
    rows = []
    for name in HYPNOGRAM_ROWS:
        code = STAGES.index(name)
        style = STAGE_STYLE[name]
        cells: list[tuple[str, str]] = []
        for col in cols:
            if col.major == SEPARATOR:
                cells.append(("┊", "grey50"))
            elif col.major == code:
                cells.append(("█", style))
            elif code in col.present:
                cells.append(("░", style))
            elif col.major == UNSCORED and not col.present:
                cells.append(("·", "grey42"))
            else:
                cells.append((" ", ""))
        t = Text(f"{name:<3} ", style=f"bold {style}")
        t.append_text(_runs(cells))
        rows.append(t)
    rows.append(Text(" " * label_w + _axis(state, cols), style="grey70"))
    return rows


# --------------------------------------------------------------------------- sections

def _fit(t: Text, width: int) -> Text:
    """``t`` cut or padded to exactly ``width`` cells."""
    t = t.copy()
    t.truncate(width, overflow="ellipsis", pad=True)
    return t


def _header(state: DisplayState, width: int) -> Text:
    st = state.status
    left = Text(state.title, style="bold")
    if st is not None:
        left.append(f"  {st.source_name}", style="bold cyan")
        left.append(f" · {st.sfreq_hz:g} Hz · {st.channel}")
    rec = state.recording
    if rec is not None and not rec.recording:
        right = Text(f" NOT RECORDING ({rec.rows_pending} rows kept) ", style="bold white on red")
    elif st is None:
        right = Text("waiting for the stream", style="bright_yellow")
    elif st.stalled:
        since = state.stalled_since_s if state.stalled_since_s is not None else st.elapsed_s
        right = Text(f" SIGNAL LOST {st.elapsed_s - since:.0f} s ", style="bold white on red")
    else:
        right = Text("● receiving", style="bold bright_green")
    if st is not None:
        right.append(f"  up {_fmt_hms(st.elapsed_s)}")
    left = _fit(left, max(1, width - right.cell_len - 1))
    return left + Text(" ") + right


def _now(state: DisplayState, width: int) -> list[Text]:
    """Eight lines: the stage in large letters with name, confidence, epoch and clock
    time, then the five probabilities as bars."""
    rec = state.last
    if rec is None:
        st = state.status
        lines = [Text("waiting for the first 30-s epoch", style="bold")]
        if st is not None and st.sfreq_hz > 0:
            got = min(1.0, st.samples_received / (st.sfreq_hz * EPOCH_S))
            fill, rest = _bar(got, max(5, width - 6))
            lines.append(Text(fill, style="bright_green") + Text(rest, style="grey35") + Text(f" {got * 100:3.0f}%"))
        return lines
    name = rec.stage
    style = STAGE_STYLE.get(name, STAGE_STYLE[UNSCORED_NAME])
    big = big_text(name)
    bw = max(len(r) for r in big)
    conf = Text("confidence ", style="grey70")
    conf.append(_pct(rec.confidence * 100, 0) if math.isfinite(rec.confidence) else "—", style="bold")
    side = [
        Text(name, style=f"bold {style}") + Text(f"  {STAGE_LONG.get(name, '')}", style=style),
        conf,
        Text(f"epoch {rec.epoch} · {_clock(state, rec.epoch - (state.first_epoch or 0))}", style="grey70"),
    ]
    lines = [Text(f"{big[r]:<{bw}}  ", style=f"bold {style}") + side[r] for r in range(3)]
    bar_w = max(5, width - 9)
    for k, s in enumerate(STAGES):
        p = rec.probabilities[k] if k < len(rec.probabilities) else float("nan")
        fill, rest = _bar(p, bar_w)
        mark = "bold " if s == name else ""
        t = Text(f"{s:<4}", style=mark + STAGE_STYLE[s])
        t.append(fill, style=STAGE_STYLE[s])
        t.append(rest, style="grey30")
        t.append(f" {p * 100:3.0f}%" if math.isfinite(p) else "    —", style=mark or None)
        lines.append(t)
    return lines


def _flags_text(rec: ScoredEpoch | None) -> Text:
    if rec is None:
        return Text("")
    flags = [f for f in rec.flags if f]
    if not flags:
        return Text("signal ok", style="bright_green")
    t = Text("flags: ", style="grey70")
    for i, f in enumerate(flags):
        t.append(("" if i == 0 else " ") + f, style=FLAG_STYLE.get(f, "bright_yellow"))
    return t


def _min(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:.1f} min"


def _kv(name: str, value: str, name_w: int, value_w: int) -> Text:
    return Text(f"{name:<{name_w}}", style="grey70") + Text(f"{value:>{value_w}}", style="bold")


STATS_WIDTH = 40


def _stats(state: DisplayState) -> list[Text]:
    """Seven lines, 40 cells wide, of running sleep statistics in minutes (names and
    definitions as in sleepnet.report.sleep_stats)."""
    s = state.stats
    pairs = [
        (("TIB", _min(s.tib_min)), ("TST", _min(s.tst_min))),
        (("SE", _pct(s.se_pct)), ("SME", _pct(s.sme_pct))),
        (("SOL", _min(s.sol_min)), ("WASO", _min(s.waso_min))),
        (("REM lat", _min(s.rem_latency_min)), ("awakenings", str(s.n_awakenings))),
    ]
    lines = [_kv(*a, 7, 10) + Text("   ") + _kv(*b, 10, 10) for a, b in pairs]
    head = Text(f"{'':<5}")
    for st in STAGES:
        head.append(f"{st:>7}", style=f"bold {STAGE_STYLE[st]}")
    mins = Text(f"{'min':<5}", style="grey70") + Text("".join(f"{s.minutes[st]:>7.1f}" for st in STAGES))
    pct = Text(f"{'%TST':<5}", style="grey70") + Text(f"{'':>7}" + "".join(
        f"{s.pct_tst[st]:>7.1f}" if math.isfinite(s.pct_tst[st]) else f"{'—':>7}" for st in STAGES[1:]))
    return lines + [head, mins, pct]


def _agreement_line(a: Agreement | None) -> Text:
    if a is None:
        return Text("vs truth: waiting for the first pair", style="grey70")
    if a.n_epochs == 0:
        return Text(f"vs truth: 0 scored pairs ({a.n_excluded} unscored)", style="grey70")
    t = Text("vs truth  ", style="grey70")
    t.append(f"acc {a.accuracy * 100:.1f}%", style="bold")
    t.append(f"  kappa {a.kappa:.2f}", style="bold")
    t.append(f"  n={a.n_epochs}", style="grey70")
    return t


CONFUSION_WIDTH = 47


def _confusion(a: Agreement) -> list[Text]:
    """A 5x5 confusion matrix (rows true, columns predicted) with recall, as 7 lines."""
    head = Text("true\\pred", style="grey70")
    for s in STAGES:
        head.append(f"{s:>6}", style=f"bold {STAGE_STYLE[s]}")
    head.append(f"{'recall':>8}", style="grey70")
    lines = [Text("truth (rows) vs predicted (columns)", style="bold"), head]
    for k, s in enumerate(STAGES):
        t = Text(f"{s:<9}", style=f"bold {STAGE_STYLE[s]}")
        for j, v in enumerate(a.confusion[k]):
            t.append(f"{v:>6}", style="bold" if j == k else ("grey42" if v == 0 else None))
        t.append(f"{a.recall[s] * 100:>7.0f}%" if a.support[s] else f"{'—':>8}")
        lines.append(t)
    return lines


def _signal(state: DisplayState, width: int, rows: int) -> list[Text]:
    st = state.status
    x = np.asarray(st.recent_uv if st is not None else np.zeros(0), dtype=np.float64)
    finite = x[np.isfinite(x)]
    centred = x - (float(np.median(finite)) if len(finite) else 0.0)
    scale = trace_scale_uv(centred)
    head = Text("signal ", style="bold")
    secs = len(x) / st.recent_sfreq_hz if st is not None and st.recent_sfreq_hz > 0 else 0.0
    head.append(f"last {secs:.0f} s · ±{scale:g} µV   ", style="grey70")
    if st is not None and st.stalled:
        head.append("no samples arriving", style="bold bright_red")
    else:
        head.append_text(_flags_text(state.last))
    style = "bright_green"
    if state.last is not None and any(f in ("clipped", "artefact", "flat", "gap") for f in state.last.flags):
        style = "bright_yellow"
    return [head] + [Text(" " + r, style=style) for r in braille_trace(centred, max(1, width - 1), rows, scale)]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _health(state: DisplayState) -> list[Text]:
    st = state.status
    if st is None:
        return [Text("no stream status yet", style="grey70")]
    t = Text()
    t.append(f"{st.samples_received:,}", style="bold")
    t.append(" samples received · ", style="grey70")
    t.append(_plural(st.gaps, "gap"), style="bold bright_red" if st.gaps else "bold")
    t.append(" · ", style="grey70")
    miss_s = st.samples_missing / st.sfreq_hz if st.sfreq_hz > 0 else 0.0
    t.append(f"{st.samples_missing:,} missing", style="bold bright_red" if st.samples_missing else "bold")
    t.append(f" ({miss_s:.1f} s)", style="grey70")
    lat = Text("latency ", style="grey70")
    last = st.last_latency_ms if math.isfinite(st.last_latency_ms) else (
        state.latencies_ms[-1] if state.latencies_ms else float("nan"))
    lat.append("—" if not math.isfinite(last) else f"{last:.0f} ms", style="bold")
    if state.latencies_ms:
        arr = np.fromiter(state.latencies_ms, dtype=np.float64)
        lat.append(f" (median {np.median(arr):.0f}, max {arr.max():.0f})", style="grey70")
    lat.append(" · ", style="grey70")
    lat.append(_plural(state.n_epochs, "epoch"), style="bold")
    lat.append(f" ({state.n_unscored} unscored)", style="grey70")
    if st.stalled:
        since = state.stalled_since_s if state.stalled_since_s is not None else st.elapsed_s
        lat.append(f" · SIGNAL LOST for {st.elapsed_s - since:.0f} s, waiting", style="bold bright_red")
    rec = state.recording
    if rec is not None and not rec.recording:
        lost = f", {rec.rows_lost} lost" if rec.rows_lost else ""
        t = Text(f"NOT RECORDING: the hypnogram file cannot be written ({rec.error}); {rec.rows_pending} rows "
                 f"kept in memory{lost}, retrying each epoch · ", style="bold white on red") + t
    return [t, lat]


def _side_by_side(blocks: list[list[Text]], widths: list[int], gap: int = 2) -> list[Text]:
    n = max(len(b) for b in blocks)
    out = []
    for i in range(n):
        line = Text()
        for k, (b, w) in enumerate(zip(blocks, widths)):
            cell = b[i] if i < len(b) else Text("")
            line.append_text(_fit(cell, w))
            if k < len(blocks) - 1:
                line.append(" " * gap)
        out.append(line)
    return out


# --------------------------------------------------------------------------- the screen

def render(state: DisplayState, width: int = 80, height: int = 24) -> RenderableType:
    """The whole screen for a terminal of ``width`` x ``height`` cells.

    Pure: reads ``state``, never changes it. From 32 rows the sections get frames; a
    truth stream adds an accuracy/kappa line, and a confusion matrix beside the
    statistics on wide screens (about 140 columns), or under them when the height
    allows. Under 82 columns the statistics go under the current stage.

    Parameters
    ----------
    state : DisplayState
        What the screen shows.
    width : int
        Terminal columns (at least 40 are used).
    height : int
        Terminal rows (at least 12 are used).

    Returns
    -------
    rich.console.RenderableType
        The screen, a Rich group of the header and the sections.
    """
    width, height = max(40, int(width)), max(12, int(height))
    bordered = height >= 32
    inner = width - (4 if bordered else 0)
    has_truth = bool(state.truth)
    trace_rows = 2 if height < 28 else (3 if height < 40 else 5)

    now_w = min(44, max(30, inner - STATS_WIDTH - 2))
    agree = state.agreement() if has_truth else None
    stats = _stats(state) + ([_agreement_line(agree)] if has_truth else [])
    blocks, widths = [_now(state, now_w), stats], [now_w, STATS_WIDTH]
    conf = _confusion(agree) if agree is not None and agree.n_epochs else None
    conf_beside = conf is not None and inner >= now_w + STATS_WIDTH + 4 + CONFUSION_WIDTH
    if conf_beside:
        blocks.append(conf)
        widths.append(CONFUSION_WIDTH)
    if inner < now_w + 2 + STATS_WIDTH:          # too narrow for two columns: stack them,
        top = blocks[0] + stats[:4] + stats[7:]   # without the per-stage table
    else:
        top = _side_by_side(blocks, widths)
    hyp = render_hypnogram(state, inner)
    sig = _signal(state, inner, trace_rows)
    health = _health(state)
    n = state.n_epochs
    hyp_title = f"hypnogram · {_plural(n, 'epoch')} ({format_minutes(n * EPOCH_S / 60)})"
    if state.dropped_epochs:                     # a session longer than the strip keeps
        hyp_title += f", the last {format_minutes(len(state.codes) * EPOCH_S / 60)} shown"

    frames = 2 * 5 if bordered else 1
    used = 1 + len(top) + len(hyp) + len(sig) + len(health) + frames
    conf_below = conf is not None and not conf_beside and height - used >= len(conf) + (2 if bordered else 0)

    if bordered:
        def panel(lines: list[Text], title: str | None = None) -> Panel:
            for t in lines:
                t.no_wrap, t.overflow = True, "ellipsis"
            return Panel(Group(*lines), title=f" {title} " if title else None, title_align="left",
                         box=box.ROUNDED, padding=(0, 1))
        parts: list[RenderableType] = [_header(state, width), panel(top, "now")]
        if conf_below:
            parts.append(panel(conf))
        parts += [panel(hyp, hyp_title), panel(sig), panel(health, "stream")]
        return Group(*parts)
    rule = [Text(f"── {hyp_title} ".ljust(width, "─"), style="grey50")]
    # Tight screens (narrow ones stack the columns): give up the least useful lines first.
    while 1 + len(top) + len(rule) + len(hyp) + len(sig) + len(health) > height:
        if len(sig) > 2:
            sig = sig[:-1]
        elif rule:
            rule = []
        elif len(health) > 1:
            health = health[:1]
        else:
            break
    lines = [*top, *rule, *hyp, *sig, *(conf if conf_below else []), *health]
    for t in lines:
        t.no_wrap, t.overflow = True, "ellipsis"
    return Group(_header(state, width), *lines)
