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
each epoch's record. The scoring and the measures are :mod:`scorer.gate.evaluation`'s
(the tests check them on subject 0); this module adds the LOSO folds, the rule table and
the ``gate.json`` block.

**The arousal guard cannot run here** (no signal in feature files): these are the
figures of the epoch-level rule alone. Window precision and coverage are
:func:`scorer.gate.evaluation.night_metrics`'s (no arousals): the share of open time whose true
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
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scorer.gate.evaluation import FeatureSession, measure, score_feature_session, subject0_sessions

from .common import SHARED

FOLDER = SHARED / "sleep-edf-features"
PROBABILITIES = (0.7, 0.8, 0.9)
EPOCH_COUNTS = (1, 2, 3)
GUARD_NOTE = ("the arousal guard cannot run on feature nights (no signal): epoch-level rule only "
              "(stage, probability, consecutive epochs, flags incl. warmup, max open time)")


def rule_table(sessions: Sequence[FeatureSession], rule) -> list[dict]:
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


def loso_sessions(folder: Path = FOLDER, threads: int = 2,
                  on_fold: Callable[[int, int], None] | None = None) -> list[FeatureSession]:
    """Every night scored by a model trained on the other subjects' nights with the
    shipped recipe (the folds of ``benchmarks.real_nights``)."""
    from sleepnet.io.feature_nights import read_feature_folder
    from sleepnet.train.feature_training import FeatureTrainConfig, eval_start, fit_trees, in_memory_model

    nights = read_feature_folder(folder)
    cfg = FeatureTrainConfig(threads=threads)
    subjects = sorted({n.subject for n in nights})
    out = []
    for k, s in enumerate(subjects):
        text, context = fit_trees([n for n in nights if n.subject != s], cfg)
        model = in_memory_model(text, context, model_id=f"loso-without-subject-{s}")
        out += [score_feature_session(model, n, eval_start(n)) for n in nights if n.subject == s]
        if on_fold:
            on_fold(k + 1, len(subjects))
    return out


def real_feature_nights(model, rule, loso: bool, folder: Path = FOLDER,
                        on_progress: Callable[[str], None] | None = None) -> dict:
    """The ``real_feature_nights`` block of ``gate.json`` (see the module text).

    Parameters
    ----------
    model : FeatureGbmModel
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
