"""The ward's screen as a pure function: :func:`render` turns a
:class:`~scorer.ward.state.WardState` and a terminal size into a Rich renderable.

Overview: a header (beds, streams refused past ``--max-beds``, what is followed, where
files go, the clock), then one row per
bed: its number, name, current stage and confidence, a one-line hypnogram strip of the
night (newest at the right; the bar height and colour give the stage: W highest, N3
lowest, · unscored; older epochs summarised several per column as on the live screen),
TST and sleep efficiency so far, signal state (receiving, gaps, SIGNAL LOST, or the
worker starting / restarting / HUNG: killed for its silence, restart pending), the last
latency, the agreement with a truth stream (— without one) and the worker restarts (on
red when a worker of the bed hung); with ``--gate``, also each bed's stimulation
window: open or closed, for how long, and why it last closed (— for a bed without a
gate). A key line at the bottom.

Detail: the ``live`` screen (:func:`scorer.screen.render`) of the selected bed, with a
line naming the bed and the keys (and above it, for a gated bed, its window and rule). Nothing here touches the terminal or the state.
"""
from __future__ import annotations

import math
from datetime import datetime

from rich.console import Group, RenderableType
from rich.text import Text

from scorer.screen import SEPARATOR, STAGE_STYLE, strip_columns
from scorer.screen import render as render_bed
from sleepnet.stages import STAGES, UNSCORED

from .state import HUNG, RESTARTING, STARTING, STOPPED, BedState, GateState, WardState

#: one-character bars of the strip, by stage (W highest, N3 lowest, as hypnograms are drawn)
STAGE_BAR: dict[str, str] = {"W": "█", "REM": "▆", "N1": "▅", "N2": "▃", "N3": "▁"}
KEYS = "1-9 or ↑↓ Enter: a bed's screen · Esc: all beds · Ctrl-C: stop the ward"
DETAIL_KEYS = "Esc: all beds · ←→: other bed · Ctrl-C: stop"

# fixed column widths (cells); the name and the strip take what is left
W_NUM, W_STAGE, W_TST, W_SE, W_SIGNAL, W_LAT, W_AGREE, W_RESTART = 3, 8, 7, 4, 11, 7, 4, 3
W_GATE_MIN, W_GATE_MAX = 10, 28          # the gate column (only when some bed runs a gate)


def _fit(t: Text, width: int) -> Text:
    t = t.copy()
    t.truncate(max(0, width), overflow="ellipsis", pad=True)
    return t


def strip(codes: list[int], width: int) -> Text:
    """The night of one bed on ``width`` cells (see the module text).

    Parameters
    ----------
    codes : list of int
        The bed's stage codes per epoch, oldest first (-1 unscored).
    width : int
        Cells.

    Returns
    -------
    rich.text.Text
        One bar per column (W highest, N3 lowest, ``·`` unscored, ``┊`` the start of the
        one-epoch-per-column zone), exactly ``width`` cells.
    """
    out = Text()
    for col in strip_columns(codes, width):
        if col.major == SEPARATOR:
            out.append("┊", style="grey50")
        elif col.major == UNSCORED or col.major < 0:
            out.append("·", style="grey42")
        else:
            name = STAGES[col.major]
            out.append(STAGE_BAR[name], style=STAGE_STYLE[name])
    return _fit(out, width)


def _tst(minutes: float) -> str:
    if not math.isfinite(minutes):
        return "—"
    h, m = divmod(int(round(minutes)), 60)
    return f"{h}h{m:02d}" if h else f"{m}m"


def signal_text(bed: BedState) -> Text:
    """The bed's state in a word or two: the worker first, then the stream.

    Parameters
    ----------
    bed : BedState
        The bed as the ward last updated it: its ``worker`` state and ``retry_in_s``, then
        its display's stream status.

    Returns
    -------
    rich.text.Text
        ``HUNG rst 5s``, ``restart 5s``, ``stopped``, ``starting``, ``waiting``, ``SIGNAL
        LOST``, ``gaps N`` or ``receiving``, styled.
    """
    if bed.worker in (RESTARTING, HUNG):
        wait = f" {bed.retry_in_s:.0f}s" if bed.retry_in_s is not None else ""
        if bed.worker == HUNG:
            return Text(f"HUNG rst{wait}", style="bold white on red")
        return Text(f"restart{wait}", style="bold bright_yellow")
    if bed.worker == STOPPED:
        return Text("stopped", style="grey50")
    st = bed.display.status
    if st is None:
        return Text("starting" if bed.worker == STARTING else "waiting", style="bright_yellow")
    if st.stalled:
        return Text("SIGNAL LOST", style="bold white on red")
    if st.gaps:
        return Text(f"gaps {st.gaps}", style="bold bright_yellow")
    return Text("receiving", style="bright_green")


def _ago(seconds: float) -> str:
    """A duration in a few characters: ``45s``, ``12m``, ``1h05``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{s % 3600 // 60:02d}"


def gate_text(gate: GateState | None, now_wall_s: float | None = None, width: int | None = None) -> Text:
    """A bed's stimulation window in a few words.

    Parameters
    ----------
    gate : GateState or None
        The bed's window (None: no gate).
    now_wall_s : float, optional
        Wall-clock time now, POSIX s (None: no duration shown).
    width : int, optional
        Cells available: the reason is shortened first, and left out when fewer than 4
        cells are left for it (None: no limit).

    Returns
    -------
    rich.text.Text
        ``open 12m``, ``closed 4m stage REM`` (how long since it changed, then why it last
        closed), ``waiting`` (its worker has not said yet) or ``—`` (no gate).
    """
    if gate is None:
        return Text("—", style="grey50")
    if gate.open is None:
        return Text("waiting", style="grey50")
    since = ""
    if now_wall_s is not None and math.isfinite(gate.since_wall_s):
        since = " " + _ago(now_wall_s - gate.since_wall_s)
    if gate.open:
        return Text(f"open{since}", style="bold bright_green")
    t = Text(f"closed{since}", style="bold")
    room = None if width is None else width - t.cell_len - 1
    if gate.last_close_reason and (room is None or room >= 4):
        t.append(" ")
        t.append_text(_fit(Text(gate.last_close_reason, style="bright_yellow"), room)
                      if room is not None and len(gate.last_close_reason) > room
                      else Text(gate.last_close_reason, style="bright_yellow"))
    return t


def bed_row(k: int, bed: BedState, name_w: int, strip_w: int, selected: bool, gate_w: int = 0,
            now_wall_s: float | None = None) -> Text:
    """One bed's row of the overview.

    Parameters
    ----------
    k : int
        The bed's number shown (1-based).
    bed : BedState
        The bed.
    name_w : int
        Cells of the name column.
    strip_w : int
        Cells of the hypnogram strip.
    selected : bool
        The row is highlighted (the cursor is on it).
    gate_w : int
        Cells of the gate column; 0: no gate column.
    now_wall_s : float, optional
        Wall-clock time now, POSIX s (for the gate column's durations).

    Returns
    -------
    rich.text.Text
        The row, ``3 + name_w + strip_w + ...`` cells wide.
    """
    rec = bed.last_record
    t = Text(f"{'>' if selected else ' '}{k:<2}"[:W_NUM], style="bold reverse" if selected else "bold")
    t.append(" ")
    t.append_text(_fit(Text(bed.name, style="bold cyan"), name_w))
    t.append(" ")
    if rec is None:
        stage = Text("—", style="grey50")
    else:
        stage = Text(f"{rec.stage:<3}", style=f"bold {STAGE_STYLE.get(rec.stage, 'grey50')}")
        stage.append(f" {rec.confidence:.2f}" if math.isfinite(rec.confidence) else "  —")
    t.append_text(_fit(stage, W_STAGE))
    t.append(" ")
    t.append_text(strip(bed.display.codes, strip_w))
    stats = bed.display.stats if bed.display.codes else None
    tst = _tst(stats.tst_min) if stats else "—"
    se = f"{stats.se_pct:.0f}%" if stats and math.isfinite(stats.se_pct) else "—"
    lat = f"{bed.latency_ms:.0f}ms" if math.isfinite(bed.latency_ms) else "—"
    a = bed.display.agreement() if bed.display.truth else None
    agree = f"{100 * a.accuracy:.0f}%" if a is not None and a.n_epochs else "—"
    t.append(f" {tst:>{W_TST}} {se:>{W_SE}} ")
    t.append_text(_fit(signal_text(bed), W_SIGNAL))
    t.append(f" {lat:>{W_LAT}} {agree:>{W_AGREE}} ")
    t.append(f"{bed.restarts:>{W_RESTART}}", style="bold white on red" if bed.hangs else
             "bold bright_yellow" if bed.restarts else "grey50")
    if gate_w > 0:
        t.append(" ")
        t.append_text(_fit(gate_text(bed.gate, now_wall_s, gate_w), gate_w))
    return t


def _layout(width: int, gated: bool = False) -> tuple[int, int, int]:
    """(name width, strip width, gate width: 0 without a gate column) for a screen
    ``width`` cells wide."""
    fixed = W_NUM + W_STAGE + W_TST + W_SE + W_SIGNAL + W_LAT + W_AGREE + W_RESTART + 9
    gate_w = max(W_GATE_MIN, min(W_GATE_MAX, (width - fixed - 1) // 3)) if gated else 0
    rest = max(12, width - fixed - (gate_w + 1 if gated else 0))
    name_w = max(8, min(24, rest // 2))
    return name_w, max(4, rest - name_w), gate_w


def _header(state: WardState, width: int, now_wall_s: float | None) -> Text:
    n = len(state.beds)
    clock = datetime.fromtimestamp(now_wall_s).strftime("%H:%M:%S") if now_wall_s is not None else ""
    left = Text("sleepstream ward", style="bold")
    left.append(f"  {n} bed{'s' if n != 1 else ''}", style="bold cyan")
    if state.refused_total:
        left.append(f" · {state.refused_total} refused (--max-beds {state.max_beds})", style="bold bright_yellow")
    left.append(f" · {state.following} · files in {state.out_dir}")
    right = Text(clock)
    return _fit(left, max(1, width - right.cell_len - 1)) + Text(" ") + right


def render_overview(state: WardState, width: int = 80, height: int = 24, cursor: int = 0,
                    now_wall_s: float | None = None, note: str = "") -> RenderableType:
    """Every bed on one screen (see the module text).

    Parameters
    ----------
    state : WardState
        The ward.
    width : int
        Terminal columns (at least 60 are used).
    height : int
        Terminal rows (at least 6 are used); with more beds than rows the list scrolls to
        keep the cursor in sight.
    cursor : int
        The highlighted bed, 0-based.
    now_wall_s : float, optional
        Wall-clock time now, POSIX s (the header's clock, the gate durations).
    note : str
        The latest supervision event, shown above the key line.

    Returns
    -------
    rich.console.RenderableType
        The screen, a Rich group of lines.
    """
    width, height = max(60, int(width)), max(6, int(height))
    name_w, strip_w, gate_w = _layout(width, any(b.gate is not None for b in state.beds))
    night = "night (newest right)" if strip_w >= 20 else "night"
    head = Text(f"{'#':<{W_NUM}} {'bed':<{name_w}} {'stage':<{W_STAGE}} {night:<{strip_w}} "
                f"{'TST':>{W_TST}} {'SE':>{W_SE}} {'signal':<{W_SIGNAL}} {'latency':>{W_LAT}} "
                f"{'agr':>{W_AGREE}} {'rst':>{W_RESTART}}" + (f" {'gate':<{gate_w}}" if gate_w else ""),
                style="bold grey70")
    lines = [_header(state, width, now_wall_s), _fit(head, width)]
    room = height - 3 - bool(note)                  # header, column names, note, key line
    beds = state.beds
    if not beds:
        lines.append(Text(f"waiting for streams ({state.following}) ...", style="bright_yellow"))
    first = 0
    if len(beds) > room:                            # keep the cursor in sight
        first = min(max(0, cursor - room // 2), len(beds) - room + 1)
        room -= 1
    for k in range(first, min(len(beds), first + room)):
        lines.append(_fit(bed_row(k + 1, beds[k], name_w, strip_w, k == cursor, gate_w, now_wall_s), width))
    if len(beds) > first + room or first:
        lines.append(Text(f"... beds {first + 1}-{min(len(beds), first + room)} of {len(beds)} shown; ↑↓ to scroll",
                          style="grey50"))
    if note:
        lines.append(_fit(Text(note, style="bright_yellow"), width))
    lines.append(_fit(Text(KEYS, style="grey50"), width))
    for t in lines:
        t.no_wrap, t.overflow = True, "ellipsis"
    return Group(*lines)


def render(state: WardState, width: int = 80, height: int = 24, selected: int | None = None, cursor: int = 0,
           now_wall_s: float | None = None, note: str = "") -> RenderableType:
    """The ward screen: the overview, or one bed on the ``live`` screen.

    Parameters
    ----------
    state : WardState
        The ward, as the supervisor's loop last left it.
    width : int
        Terminal columns (the overview uses at least 60, a bed's screen at least 40).
    height : int
        Terminal rows; a bed's screen keeps its last one or two for the bed's worker and
        stimulation-window lines.
    selected : int, optional
        The bed shown on the ``live`` screen, 0-based (None, or out of range: the
        overview).
    cursor : int
        The overview's highlighted bed, 0-based (kept while a bed's screen is shown).
    now_wall_s : float, optional
        Wall-clock time now, POSIX s; None leaves the overview's clock blank and the
        stimulation windows' durations out.
    note : str
        The overview's latest supervision event (a bed's screen does not show it).

    Returns
    -------
    rich.console.RenderableType
        The overview (:func:`render_overview`), or the bed's ``live`` screen with its
        foot lines.
    """
    if selected is None or not 0 <= selected < len(state.beds):
        return render_overview(state, width, height, cursor, now_wall_s, note)
    bed = state.beds[selected]
    hung = f" ({bed.hangs} hung)" if bed.hangs else ""
    foot = Text(f"bed {selected + 1} of {len(state.beds)}: {bed.name} · worker {bed.worker}, "
                f"{bed.restarts} restarts{hung} · {DETAIL_KEYS}", style="grey50")
    foot.no_wrap, foot.overflow = True, "ellipsis"
    if bed.gate is None:
        return Group(render_bed(bed.display, width, max(12, height - 1)), _fit(foot, max(40, width)))
    g = bed.gate
    line = Text("stimulation window ", style="bold")
    line.append_text(gate_text(g, now_wall_s))
    line.append(f" · rule {g.rule or '(set by hand)'} · opened {g.opens}x", style="grey70")
    line.no_wrap, line.overflow = True, "ellipsis"
    return Group(render_bed(bed.display, width, max(12, height - 2)), _fit(line, max(40, width)),
                 _fit(foot, max(40, width)))
