"""Stimulation-window precision on the real Sleep-EDF feature nights (``benchmarks.gate``).

The 20 nights of ``../shared/data/sleep-edf-features`` hold per-epoch features and expert
labels, no signal. Each night is scored by a real-trained feature stager exactly as a live
session would score it: a fresh stager from the session start that ``sleepstream evaluate
--dataset features`` uses (:func:`sleepnet.train.feature_training.eval_start`, 5-60 min
before sleep onset, seeded by the night's name), fed every epoch from there to the end of
the trimmed night (30 min of wake after the last sleep epoch), so night context and the
``warmup`` flag are those of the live loop. The stager's predictions become the live
loop's :class:`scorer.records.ScoredEpoch` records (times: s from the session start) and
drive the pure gate (:class:`scorer.gate.window.GateWindow`) as :class:`scorer.gate.sink.GateSink`
does: the data clock every 0.5 s (``on_time``, so ``max_open_s`` closes in time), then
each epoch's record.

**The arousal guard cannot run here** (no signal in feature files): these are the
figures of the epoch-level rule alone. Window precision and coverage are
:func:`benchmarks.gate.night_metrics`'s (no arousals): the share of open time whose true
30-s label is N2/N3, and the share of stable N2/N3 (runs of >= 3 N2/N3 epochs, less the
first two) inside windows. Also the open time by true stage (what windows open into when
they are wrong) and a small table of ``min_probability`` x ``epochs``.

Two sets:

* ``subject0``: SC4001E0 and SC4002E0 with the shipped default model, which never saw
  subject 0 (its ``metrics.json`` lists its training nights; checked);
* ``loso`` (``--real-loso``): all 20 nights, each scored by a model trained on the other
  nine subjects with the shipped recipe
  (:class:`~sleepnet.train.feature_training.FeatureTrainConfig` defaults, as
  ``benchmarks.real_nights``); ten LightGBM fits: 137 s on the 2-core build machine with
  light load, but one fold took 142 s while another CPU-bound job ran, so it is opt-in.

The top-level ``window_precision`` and ``coverage`` of the block are the LOSO set's (all
20 nights) when it ran, else subject 0's.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .common import SHARED

FOLDER = SHARED / "sleep-edf-features"
FS = 100.0                  # the live loop's epoch end: 1/FS before the next epoch's start
CHUNK_S = 0.5               # the data clock moves the gate every pulled chunk
STAGE_NAMES = ("W", "N1", "N2", "N3", "REM")
PROBABILITIES = (0.7, 0.8, 0.9)
EPOCH_COUNTS = (1, 2, 3)
GUARD_NOTE = ("the arousal guard cannot run on feature nights (no signal): epoch-level rule only "
              "(stage, probability, consecutive epochs, flags incl. warmup, max open time)")


@dataclasses.dataclass(frozen=True)
class Session:
    """One real night scored as a live session.

    Parameters
    ----------
    name : str
        The night (e.g. ``SC4001E0``).
    model_id : str
        The model that scored it.
    start_epoch : int
        Session start, epoch index in the night file.
    records : tuple of ScoredEpoch
        The live loop's records, epoch 0 = the session start (times in s from it).
    labels : numpy.ndarray
        True codes 0-4 (-1 unscored) of the same epochs.
    """

    name: str
    model_id: str
    start_epoch: int
    records: tuple
    labels: np.ndarray


def score_session(model, night, start: int) -> Session:
    """Score ``night`` (a :class:`~sleepnet.train.feature_training.FeatureNight`) with a fresh
    stager of ``model`` from epoch ``start`` to the end of the trimmed night, as the live
    loop does, and return its records.

    All epochs go to the stager in one call: feeding them one at a time, as live does, gives
    the same predictions (the stager's contract, ``tests/test_live.py``; on subject 0's two
    nights every stage, probability and flag was checked equal).
    """
    from sleepnet.preprocess import Epoch
    from sleepnet.train.training import trim_range

    from .gate import epoch_records

    _, end = trim_range(night.labels)
    empty = np.zeros(0, dtype=np.float32)
    epochs = [Epoch(index=k, data=empty, scorable=bool(night.scorable[i]), features=night.features[i])
              for k, i in enumerate(range(start, end))]
    preds = model.new_stager().score(epochs)
    records = tuple(epoch_records(preds))
    return Session(night.name, model.model_id, start, records, np.asarray(night.labels[start:end]))


def gate_events(records: Sequence, rule) -> list:
    """Drive a :class:`scorer.gate.window.GateWindow` with ``rule`` as the live gate sink
    does without samples for its guard: the data clock at each 0.5-s chunk's last sample
    of an epoch, then the epoch's record. Returns the open/close events (the start's
    ``restart`` close left out)."""
    from scorer.gate.window import GateWindow

    window = GateWindow(rule)
    window.start(0.0)
    events: list = []
    n_chunks = int(round(30.0 / CHUNK_S))
    for r in records:
        for j in range(1, n_chunks + 1):
            events += window.on_time(r.start_time + j * CHUNK_S - 1 / FS)
        events += window.on_epoch(r)
    return events


def open_by_stage(labels: np.ndarray, events: list) -> dict[str, float]:
    """Seconds of open-window time in each true stage (``UNS`` for unscored labels)."""
    from .gate import intervals

    out = {s: 0.0 for s in (*STAGE_NAMES, "UNS")}
    n = len(labels)
    for a, b, _ in intervals(events, n * 30.0):
        for k in range(int(a // 30), min(n, int(np.ceil(b / 30)))):
            overlap = min(b, (k + 1) * 30.0) - max(a, k * 30.0)
            if overlap > 0:
                out[STAGE_NAMES[labels[k]] if labels[k] >= 0 else "UNS"] += overlap
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def measure(sessions: Sequence[Session], rule) -> dict:
    """Window precision, coverage, open time and open time by true stage, pooled and per
    night, for ``rule`` over ``sessions``."""
    from .gate import night_metrics

    no_arousals = np.zeros((0, 2))
    per, by_stage = {}, {s: 0.0 for s in (*STAGE_NAMES, "UNS")}
    tot = {"open_s": 0.0, "open_true_sleep_s": 0.0, "stable_s": 0.0, "stable_covered_s": 0.0, "windows": 0}
    for s in sessions:
        events = gate_events(s.records, rule)
        m = night_metrics(s.labels, no_arousals, events)
        stages = open_by_stage(s.labels, events)
        for k in tot:
            tot[k] += m[k]
        for k, v in stages.items():
            by_stage[k] += v
        per[s.name] = {"model_id": s.model_id, "session_start_epoch": s.start_epoch, "epochs": len(s.records),
                       "window_precision": _ratio(m["open_true_sleep_s"], m["open_s"]),
                       "coverage": _ratio(m["stable_covered_s"], m["stable_s"]),
                       "open_h": m["open_s"] / 3600, "windows": m["windows"],
                       "open_s_by_true_stage": {k: round(v, 1) for k, v in stages.items() if v > 0}}
    wrong = sum(v for k, v in by_stage.items() if k not in ("N2", "N3"))
    return {"window_precision": _ratio(tot["open_true_sleep_s"], tot["open_s"]),
            "coverage": _ratio(tot["stable_covered_s"], tot["stable_s"]),
            "open_h": tot["open_s"] / 3600, "stable_h": tot["stable_s"] / 3600, "windows": tot["windows"],
            "open_share_by_true_stage": {k: v / tot["open_s"] for k, v in by_stage.items()} if tot["open_s"] else {},
            "wrong_open_share_by_true_stage": {k: v / wrong for k, v in by_stage.items()
                                               if k not in ("N2", "N3") and v > 0} if wrong else {},
            "per_night": per}


def rule_table(sessions: Sequence[Session], rule) -> list[dict]:
    """Pooled precision, coverage and open time for ``min_probability`` 0.7/0.8/0.9 x
    ``epochs`` 1/2/3 (other settings as ``rule``); ``default`` marks ``rule``'s own."""
    rows = []
    for p in PROBABILITIES:
        for k in EPOCH_COUNTS:
            r = dataclasses.replace(rule, min_probability=p, epochs=k)
            m = measure(sessions, r)
            rows.append({"min_probability": p, "epochs": k, "window_precision": m["window_precision"],
                         "coverage": m["coverage"], "open_h": m["open_h"],
                         "default": bool(np.isclose(p, rule.min_probability) and k == rule.epochs)})
    return rows


def _never_saw(model, subject: str) -> None:
    """Raise when ``model``'s ``metrics.json`` lists a training night of ``subject``."""
    from sleepnet.errors import SleepstreamError
    from sleepnet.train.feature_training import subject_of

    path = Path(model.source) / "metrics.json"
    if not path.is_file():
        raise SleepstreamError(f"{path}: missing; cannot check that {model.model_id} never saw subject {subject}")
    seen = [n for n in json.loads(path.read_text()).get("train_nights", []) if subject_of(n) == subject]
    if seen:
        raise SleepstreamError(f"{model.model_id} was trained on {seen}: not a held-out test of subject {subject}")


def subject0_sessions(model, folder: Path = FOLDER) -> list[Session]:
    """Subject 0's two nights scored by ``model`` (a shipped feature model that never saw them)."""
    from sleepnet.train.feature_training import HELD_OUT_SUBJECT, eval_start, read_feature_folder

    _never_saw(model, HELD_OUT_SUBJECT)
    nights = [n for n in read_feature_folder(folder) if n.subject == HELD_OUT_SUBJECT]
    return [score_session(model, n, eval_start(n)) for n in nights]


def loso_sessions(folder: Path = FOLDER, threads: int = 2,
                  on_fold: Callable[[int, int], None] | None = None) -> list[Session]:
    """Every night scored by a model trained on the other subjects' nights with the
    shipped recipe (the folds of ``benchmarks.real_nights``)."""
    from sleepnet.train.feature_training import (FeatureTrainConfig, eval_start, fit_trees, in_memory_model,
                                                 read_feature_folder)

    nights = read_feature_folder(folder)
    cfg = FeatureTrainConfig(threads=threads)
    subjects = sorted({n.subject for n in nights})
    out = []
    for k, s in enumerate(subjects):
        text, context = fit_trees([n for n in nights if n.subject != s], cfg)
        model = in_memory_model(text, context, model_id=f"loso-without-subject-{s}")
        out += [score_session(model, n, eval_start(n)) for n in nights if n.subject == s]
        if on_fold:
            on_fold(k + 1, len(subjects))
    return out


def real_feature_nights(model, rule, loso: bool, folder: Path = FOLDER,
                        on_progress: Callable[[str], None] | None = None) -> dict:
    """The ``real_feature_nights`` block of ``gate.json`` (see the module text).

    Parameters
    ----------
    model : FeatureModel
        The shipped feature model for subject 0 (one that never saw it).
    rule : GateRule
        The gate rule (the default rule in ``benchmarks.gate``).
    loso : bool
        Also the 20 nights leave-one-subject-out (ten LightGBM fits; needs lightgbm).
    folder : Path
        The feature nights.
    on_progress : callable, optional
        Called with a line of progress.
    """
    say = on_progress or (lambda _line: None)
    if not folder.is_dir():
        return {"skipped": f"{folder} is absent"}
    if getattr(model, "trees", None) is None:
        return {"skipped": f"{model.model_id} scores raw signal, not feature rows"}
    out: dict = {"guard": GUARD_NOTE, "rule": rule.describe(),
                 "protocol": "session start as `sleepstream evaluate --dataset features` (eval_start: 5-60 min "
                             "before sleep onset), scored to 30 min of wake after the last sleep epoch; "
                             "times in 30-s epochs from the session start"}
    from sleepnet.errors import SleepstreamError

    sets = {}
    t0 = time.perf_counter()
    try:
        sets["subject0"] = (f"subject 0 (never seen) with the shipped {model.model_id}",
                            subject0_sessions(model, folder))
    except SleepstreamError as exc:
        out["subject0"] = {"skipped": str(exc)}
    if loso:
        say("gate: real feature nights, leave-one-subject-out (10 LightGBM fits)")
        try:
            sets["loso"] = ("20 nights, each scored by a model trained on the other 9 subjects (shipped recipe)",
                            loso_sessions(folder, on_fold=lambda k, n: say(f"gate: LOSO fold {k}/{n}")))
        except SleepstreamError as exc:          # e.g. LightGBM not installed
            out["loso"] = {"skipped": str(exc)}
    else:
        out["loso"] = {"skipped": "run with --real-loso (ten LightGBM fits, minutes)"}
    for key, (what, sessions) in sets.items():
        m = measure(sessions, rule)
        m["what"] = what
        m["rules"] = rule_table(sessions, rule)
        out[key] = m
        say(f"gate: real {key}, min_probability x epochs -> window precision / coverage (* the rule): "
            + "; ".join(f"{r['min_probability']:g} x{r['epochs']}{'*' if r['default'] else ''} "
                        f"{100 * r['window_precision']:.1f} / {100 * r['coverage']:.1f} %" for r in m["rules"]))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    key = next((k for k in ("loso", "subject0") if k in sets), None)
    if key is not None:
        out["window_precision"] = out[key]["window_precision"]
        out["coverage"] = out[key]["coverage"]
        out["window_precision_from"] = key
    return out
