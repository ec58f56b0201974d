"""Training the recurrent stager (kind ``gru``) and the GBM + GRU ensemble (kind
``ensemble``) on real labelled feature nights.

The GRU is trained with torch (only here: scoring runs the exported arrays in numpy, see
:mod:`sleepnet.models.gru`) on sessions drawn from each training night, under the
protocol of :mod:`sleepnet.train.feature_training` (nights trimmed to 30 min of wake either
side of sleep, label-blind session starts 5-60 min before sleep onset, the current epoch
labelled):

* lights-off sessions, each twice: with the clock (hours since the session start) and
  without it;
* sessions that start anywhere in the trimmed night, without a clock (a scorer started
  mid-night, a restart without its state file);
* short sessions (1 to ``short_max_epochs`` epochs) that start anywhere, without a clock:
  the isolated-epoch case, a fresh stager that has seen a handful of epochs.

Every sequence runs from a zero hidden state at its session start, over every scorable
epoch (one GRU step each, as the stager does); the loss is the cross-entropy of the
epochs the protocol scores. The pools of sessions are drawn once per member from its
seed; each pass takes, per night, one session of each long kind and every short one.
Training is deterministic for a given seed, thread count and machine (torch's CPU
kernels); ``threads`` defaults to 1 so that a rebuild reproduces the shipped arrays.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SleepstreamError
from ..io.feature_nights import FeatureNight
from ..models.gru import N_GRU_INPUTS, GruModel, GruNets, gru_inputs
from ..night_context import UNKNOWN_START, ContextConfig, NightContext
from ..preprocess import PreprocessConfig
from ..stages import N_STAGES
from .feature_training import (
    FeatureTrainConfig,
    draw_anywhere_start,
    draw_session_start,
    fit_trees,
    in_memory_model,
    population_mean,
)
from .recipe import Recipe
from .training import trim_range


@dataclass(frozen=True)
class GruTrainConfig(Recipe):
    """The recurrent stager's recipe.

    Parameters
    ----------
    hidden : int
        Size of each GRU's hidden vector (H of :class:`sleepnet.models.gru.GruNets`).
    members : int
        GRUs trained from seeds ``seed``, ``seed + 1``, ...; the model averages them.
    passes : int
        Passes over the training nights.
    batch_size : int
        Long sessions per optimiser step.
    learning_rate, weight_decay : float
        AdamW; the learning rate decays along a cosine to 5 % of itself.
    input_noise : float
        Standard deviation of Gaussian noise added to the standardised inputs in training.
    dropout : float
        Dropout on the hidden vector before the read-out, in training.
    lights_off_draws, anywhere_draws, short_draws : int
        Sessions drawn per night into each pool.
    short_max_epochs : int
        Longest short session.
    shrink_epochs : float
        k of the night baseline.
    threads : int
        torch threads while training.
    seed : int
        Seeds the pools, the initialisation and the order of batches.
    """

    hidden: int = 64
    members: int = 3
    passes: int = 30
    batch_size: int = 8
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    input_noise: float = 0.1
    dropout: float = 0.1
    lights_off_draws: int = 4
    anywhere_draws: int = 4
    short_draws: int = 16
    short_max_epochs: int = 30
    shrink_epochs: float = 100.0
    threads: int = 1
    seed: int = 0


WEIGHT_GRID: tuple[float, ...] = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))   # the GBM's weight, 0.2-0.8


@dataclass(frozen=True)
class EnsembleTrainConfig(Recipe):
    """The ensemble's recipe: a GBM trained for both session starts, a GRU, and the GBM's
    weight in the mean of their probabilities (the GRU's is one minus it).

    Parameters
    ----------
    gbm, gru : FeatureTrainConfig, GruTrainConfig
        The members' recipes.
    gbm_weight : float, optional
        A fixed weight; None (the default): chosen on the training nights alone by
        :func:`choose_gbm_weight`.
    weight_folds : int
        Subject-grouped folds of that choice.
    weight_gru_members : int
        GRUs per member model in that choice's folds (fewer than the shipped ones, to
        save time).
    """

    gbm: FeatureTrainConfig = field(default_factory=lambda: FeatureTrainConfig(unknown_clock=True, anywhere_draws=3))
    gru: GruTrainConfig = field(default_factory=GruTrainConfig)
    gbm_weight: float | None = None
    weight_folds: int = 3
    weight_gru_members: int = 1


@dataclass(frozen=True)
class Session:
    """One training sequence.

    Parameters
    ----------
    x : numpy.ndarray
        (T, I) raw GRU inputs of its scorable epochs (:func:`sleepnet.models.gru.gru_inputs`).
    y : numpy.ndarray
        (T,) their labels, -1 where the protocol does not score the epoch.
    """

    x: np.ndarray
    y: np.ndarray


def session(night: FeatureNight, context: ContextConfig, start: int, stop: int, clock_known: bool) -> Session:
    """A session of a night as the stager sees it.

    Parameters
    ----------
    night : FeatureNight
        The night.
    context : ContextConfig
        The night context's settings.
    start, stop : int
        Epochs [start, stop).
    clock_known : bool
        Whether the hours since the session start are an input.

    Returns
    -------
    Session
        Its scorable epochs' inputs and labels.
    """
    a, b = trim_range(night.labels)
    ok = night.scorable[start:stop]
    rows = NightContext(context, clock_known=clock_known).rows_for_night(night.features[start:stop], ok)
    idx = np.arange(start, stop)[ok]
    y = night.labels[idx].copy()
    y[(idx < a) | (idx >= b)] = -1
    return Session(gru_inputs(rows[ok]), y)


def session_pool(nights: Sequence[FeatureNight], context: ContextConfig, cfg: GruTrainConfig, seed: int
                 ) -> tuple[list[list[Session]], list[Session]]:
    """The sessions a GRU trains on, drawn once.

    Parameters
    ----------
    nights : sequence of FeatureNight
        The training nights.
    context : ContextConfig
        The night context's settings.
    cfg : GruTrainConfig
        How many sessions of each kind.
    seed : int
        Seeds the draws.

    Returns
    -------
    long : list of list of Session
        Per night, its long sessions (lights-off with and without clock, anywhere), in
        draw order.
    short : list of Session
        Every short session.
    """
    rng = np.random.default_rng(seed)
    long_pool: list[list[Session]] = []
    short: list[Session] = []
    for n in nights:
        a, b = trim_range(n.labels)
        mine = []
        for _ in range(cfg.lights_off_draws):
            s = draw_session_start(n.labels, rng)
            mine.append(session(n, context, s, b, True))
            mine.append(session(n, context, s, b, False))
        for _ in range(cfg.anywhere_draws):
            mine.append(session(n, context, draw_anywhere_start(n.labels, rng), b, False))
        for _ in range(cfg.short_draws):
            s = int(rng.integers(a, b))
            short.append(session(n, context, s, min(b, s + int(rng.integers(1, cfg.short_max_epochs + 1))), False))
        long_pool.append(mine)
    return long_pool, short


def _standardisation(pool: list[list[Session]]) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate([s.x for mine in pool for s in mine])
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-6] = 1.0
    return mean, scale


def _pad(batch: Sequence[Session], mean: np.ndarray, scale: np.ndarray):
    import torch

    T = max(len(s.y) for s in batch)
    x = np.zeros((len(batch), T, N_GRU_INPUTS), dtype=np.float32)
    y = np.full((len(batch), T), -1, dtype=np.int64)
    for i, s in enumerate(batch):
        x[i, :len(s.y)] = (s.x - mean) / scale
        y[i, :len(s.y)] = s.y
    return torch.from_numpy(x), torch.from_numpy(y)


def _train_one(pool: list[list[Session]], short: list[Session], mean: np.ndarray, scale: np.ndarray,
               cfg: GruTrainConfig, seed: int, on_pass: Callable[[int, int], None] | None) -> dict[str, np.ndarray]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 7919)
    gru = nn.GRU(N_GRU_INPUTS, cfg.hidden, batch_first=True)
    out = nn.Linear(cfg.hidden, N_STAGES)
    drop = nn.Dropout(cfg.dropout)
    params = list(gru.parameters()) + list(out.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_kinds = 3
    per_pass = math.ceil(len(pool) * n_kinds / cfg.batch_size) + math.ceil(len(short) / 256)
    total = max(1, cfg.passes * per_pass)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    gru.train()
    drop.train()
    n_lo = cfg.lights_off_draws * 2
    for p in range(cfg.passes):
        batch_list: list[list[Session]] = []
        chosen: list[Session] = []
        for mine in pool:
            lo = int(rng.integers(0, cfg.lights_off_draws))
            chosen += [mine[2 * lo], mine[2 * lo + 1]]
            if len(mine) > n_lo:
                chosen.append(mine[n_lo + int(rng.integers(0, len(mine) - n_lo))])
        order = rng.permutation(len(chosen))
        chosen = [chosen[i] for i in order]
        batch_list += [chosen[i:i + cfg.batch_size] for i in range(0, len(chosen), cfg.batch_size)]
        sh = [short[i] for i in rng.permutation(len(short))]
        batch_list += [sh[i:i + 256] for i in range(0, len(sh), 256)]
        for k in rng.permutation(len(batch_list)):
            x, y = _pad(batch_list[k], mean, scale)
            if cfg.input_noise > 0:
                x = x + cfg.input_noise * torch.randn(x.shape)
            h, _ = gru(x)
            logits = out(drop(h))
            loss = loss_fn(logits.reshape(-1, N_STAGES), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
        if on_pass:
            on_pass(p + 1, cfg.passes)
    g = {k: v.detach().double().numpy().copy() for k, v in gru.state_dict().items()}
    return {"w_ih": g["weight_ih_l0"], "w_hh": g["weight_hh_l0"], "b_ih": g["bias_ih_l0"], "b_hh": g["bias_hh_l0"],
            "w_out": out.weight.detach().double().numpy().copy(), "b_out": out.bias.detach().double().numpy().copy()}


def fit_gru(nights: Sequence[FeatureNight], cfg: GruTrainConfig,
            on_pass: Callable[[int, int], None] | None = None) -> tuple[GruNets, ContextConfig]:
    """Train the GRUs of a recipe (torch, only here).

    Parameters
    ----------
    nights : sequence of FeatureNight
        The training nights.
    cfg : GruTrainConfig
        The recipe (``cfg.members`` GRUs).
    on_pass : callable, optional
        Called with (passes done, passes in all) for progress.

    Returns
    -------
    nets : GruNets
        Their exported arrays.
    context : ContextConfig
        The night-context settings (population means of these nights).

    Raises
    ------
    sleepnet.errors.SleepstreamError
        No torch, or nights that do not hold all five stages.
    """
    try:
        import torch
    except ImportError:
        raise SleepstreamError("training the recurrent stager needs torch: pip install torch") from None
    labels = np.concatenate([n.labels for n in nights])
    if len(np.unique(labels[labels >= 0])) < N_STAGES:
        raise SleepstreamError(f"the training nights hold {len(np.unique(labels[labels >= 0]))} of the 5 stages; "
                               "need all five")
    context = ContextConfig(pop_mean=population_mean(nights), shrink_epochs=cfg.shrink_epochs)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        members = []
        mean = scale = None
        for m in range(cfg.members):
            pool, short = session_pool(nights, context, cfg, cfg.seed + 1000 * m)
            if mean is None:
                mean, scale = _standardisation(pool)
            members.append(_train_one(pool, short, mean, scale, cfg, cfg.seed + 1000 * m,
                                      (lambda p, n, m=m: on_pass(m * n + p, cfg.members * n)) if on_pass else None))
    finally:
        torch.set_num_threads(threads)
    arrays = {k: np.stack([mem[k] for mem in members]) for k in members[0]}
    return GruNets.from_arrays({"input_mean": mean, "input_scale": scale, **arrays}), context


def in_memory_gru(nets: GruNets, context: ContextConfig, model_id: str = "in-memory-gru") -> GruModel:
    """A :class:`sleepnet.models.gru.GruModel` without a folder.

    Parameters
    ----------
    nets : GruNets
        The nets.
    context : ContextConfig
        Their night-context settings.
    model_id : str
        Its name.

    Returns
    -------
    GruModel
        The model (default preprocessing, source ``.``).
    """
    return GruModel(nets, context=context, default_session_start=UNKNOWN_START, preprocess=PreprocessConfig(),
                    model_id=model_id, source=Path("."))


def weight_folds(nights: Sequence[FeatureNight], folds: int) -> list[list[str]]:
    """Subject-grouped folds of the weight's choice: sorted subjects dealt round-robin.

    Parameters
    ----------
    nights : sequence of FeatureNight
        The training nights.
    folds : int
        How many folds (at most one per subject).

    Returns
    -------
    list of list of str
        The subjects of each fold.

    Raises
    ------
    sleepnet.errors.SleepstreamError
        Nights of fewer than two subjects.
    """
    subjects = sorted({n.subject for n in nights})
    if len(subjects) < 2:
        raise SleepstreamError("choosing the ensemble's weight needs nights of at least two subjects")
    k = min(folds, len(subjects))
    return [subjects[j::k] for j in range(k)]


def choose_gbm_weight(nights: Sequence[FeatureNight], cfg: EnsembleTrainConfig,
                      fit_gbm: Callable | None = None, fit_gru_nets: Callable | None = None,
                      on_fold: Callable[[int, int], None] | None = None) -> tuple[float, dict[float, float]]:
    """The GBM's weight in the ensemble, chosen on ``nights`` alone (never on nights that
    will measure the result): subject-grouped ``cfg.weight_folds``-fold cross-validation;
    in each fold both members are trained on the other folds' nights and score this
    fold's nights as the default does (sessions from lights-off, no clock); the weight of
    :data:`WEIGHT_GRID` whose mixed probabilities give the highest Cohen's kappa over every
    out-of-fold epoch wins (ties: the one nearest 0.5).

    Parameters
    ----------
    nights : sequence of FeatureNight
        The training nights.
    cfg : EnsembleTrainConfig
        The recipe.
    fit_gbm : callable, optional
        ``fit_gbm(train, cfg) -> (text, context)``; default
        :func:`sleepnet.train.feature_training.fit_trees` (a caller may cache it).
    fit_gru_nets : callable, optional
        ``fit_gru_nets(train, cfg) -> GruNets``; default :func:`fit_gru`.
    on_fold : callable, optional
        Called with (folds done, folds) for progress.

    Returns
    -------
    weight : float
        The GBM's weight.
    scores : dict of float to float
        Kappa of each weight of the grid.
    """
    from ..metrics import agreement
    from .sessions import cuts, session_probabilities

    fit_gbm = fit_gbm or fit_trees
    fit_gru_nets = fit_gru_nets or (lambda train, c: fit_gru(train, c)[0])
    gru_cfg = GruTrainConfig(**{**cfg.gru.as_dict(), "members": cfg.weight_gru_members})
    groups = weight_folds(nights, cfg.weight_folds)
    yt, pg, pr = [], [], []
    for j, held in enumerate(groups):
        train = [n for n in nights if n.subject not in held]
        text, context = fit_gbm(train, cfg.gbm)
        gbm = in_memory_model(text, context, "weight-fold-gbm", default_session_start=cfg.gbm.default_session_start)
        gru = in_memory_gru(fit_gru_nets(train, gru_cfg), context, "weight-fold-gru")
        for n in (n for n in nights if n.subject in held):
            for c in cuts(n, "lights-off"):
                t, p = session_probabilities(gbm, n, c, "unknown")
                _, q = session_probabilities(gru, n, c, "unknown")
                yt.append(t)
                pg.append(p)
                pr.append(q)
        if on_fold:
            on_fold(j + 1, len(groups))
    y, P, Q = np.concatenate(yt), np.concatenate(pg), np.concatenate(pr)
    scores = {w: agreement(y, (w * P + (1 - w) * Q).argmax(axis=1)).kappa for w in WEIGHT_GRID}
    best = max(scores.values())
    w = min((w for w, k in scores.items() if k == best), key=lambda w: (abs(w - 0.5), w))
    return w, scores


def fit_ensemble(nights: Sequence[FeatureNight], cfg: EnsembleTrainConfig,
                 on_step: Callable[[str, int, int], None] | None = None):
    """Train both members and choose the GBM's weight, on the same nights.

    Parameters
    ----------
    nights : sequence of FeatureNight
        The training nights.
    cfg : EnsembleTrainConfig
        The recipe (a fixed ``gbm_weight``, or None to choose it).
    on_step : callable, optional
        Called with (what, done, of) for progress.

    Returns
    -------
    tuple
        (the GBM's LightGBM text model, the GRU arrays, the night context, the GBM's
        weight, {weight: kappa} of the choice; empty when the weight was fixed).

    Raises
    ------
    sleepnet.errors.SleepstreamError
        Members with different ``shrink_epochs``, or what training raises.
    """
    if cfg.gbm.shrink_epochs != cfg.gru.shrink_epochs:
        raise SleepstreamError("the ensemble's members must share the night baseline's shrink_epochs")
    say = on_step or (lambda *_: None)
    scores: dict[float, float] = {}
    if cfg.gbm_weight is None:
        w, scores = choose_gbm_weight(nights, cfg, on_fold=lambda j, n: say("choosing the members' weights", j, n))
    else:
        w = float(cfg.gbm_weight)
    say("training trees", 0, 1)
    text, context = fit_trees(nights, cfg.gbm)
    say("training trees", 1, 1)
    nets, _ = fit_gru(nights, cfg.gru, lambda p, n: say("training the GRU", p, n))
    return text, nets, context, w, scores


def ensemble_in_memory(text: str, nets: GruNets, context: ContextConfig, cfg: EnsembleTrainConfig,
                       gbm_weight: float, model_id: str = "in-memory-ensemble"):
    """An :class:`sleepnet.models.ensemble.EnsembleModel` of a GBM text model and GRU
    arrays, without a folder.

    Parameters
    ----------
    text : str
        The GBM's LightGBM text model.
    nets : GruNets
        The GRU arrays.
    context : ContextConfig
        The shared night-context settings.
    cfg : EnsembleTrainConfig
        The recipe (the GBM's default session start).
    gbm_weight : float
        The GBM's weight (the GRU's is one minus it).
    model_id : str
        Its name (the members' end in ``-gbm`` and ``-gru``).

    Returns
    -------
    EnsembleModel
        The ensemble.
    """
    from ..models.ensemble import EnsembleModel

    gbm = in_memory_model(text, context, model_id + "-gbm", default_session_start=cfg.gbm.default_session_start)
    gru = in_memory_gru(nets, context, model_id + "-gru")
    return EnsembleModel(members=(gbm, gru), weights=(float(gbm_weight), 1.0 - float(gbm_weight)),
                         preprocess=PreprocessConfig(), model_id=model_id, source=Path("."))
