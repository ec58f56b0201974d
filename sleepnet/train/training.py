"""Training the CNN-LSTM, with the protocol written into the metrics it saves.

Protocol
--------
* Subject-wise split: validation subjects are never seen in training (never split by epoch).
* Each night goes through the same causal :class:`~sleepnet.preprocess.Preprocessor` as
  live scoring (whole night, one chunk), then is trimmed to 30 min of wake before the
  first and after the last sleep epoch. Stages 3+4 are N3 (the readers merge them);
  unscored and movement epochs are never targets.
* Windows never cross recordings; the label is the LAST epoch's; the first epochs of a
  night are padded by repeating the first epoch, exactly as at inference.
  (``TrainConfig.label_position`` can move the label inside the window, e.g. to the
  middle epoch for a non-causal comparison model; the shipped model keeps the last.)
* Class-balanced cross-entropy (inverse class frequency), Adam, early stopping on the
  validation subjects' macro-F1, fixed seeds.
* Augmentation per block: amplitude x exp(U(-0.25, 0.25)) and a random spectral tilt
  (f / 10 Hz) ** U(-0.5, 0.5) (domain randomisation against a simulator's exact slope).
* Each optimisation step encodes a block of 4 + K consecutive epochs once and scores the
  K windows inside it, so no epoch is encoded five times.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..metrics import Agreement, agreement
from ..models.cnn_lstm import CausalSleepNet, ModelConfig, count_parameters
from ..models.cnn_lstm_stager import SEQ_LEN, CnnLstmModel, CnnLstmStager
from ..preprocess import PreprocessConfig, Preprocessor
from ..stages import N_STAGES, UNSCORED
from .datasets import NightSource

log = logging.getLogger(__name__)

TRIM_WAKE_EPOCHS = 60  # 30 min of wake kept before the first and after the last sleep epoch

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PreparedNight:
    """A night ready for training: model-ready epochs and the targets inside the trim.

    Parameters
    ----------
    name : str
        The night's name, as its :class:`~sleepnet.train.datasets.NightSource` gives it (``SC4011E0``).
    subject : str
        Subject key for subject-wise splits.
    data : numpy.ndarray
        (n_epochs, n_times) float32 model units.
    labels : numpy.ndarray
        (n_epochs,) int8 stage codes, -1 unscored.
    scorable : numpy.ndarray
        (n_epochs,) bool.
    first, last : int
        The trimmed range of target epochs [first, last).
    """

    name: str
    subject: str
    data: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    scorable: np.ndarray = field(repr=False)
    first: int
    last: int

    def targets(self) -> np.ndarray:
        """The training targets inside the trim.

        Returns
        -------
        numpy.ndarray
            (last - first,) int64 stage codes; -1 where unscored or not scorable.
        """
        y = self.labels[self.first:self.last].astype(np.int64)
        ok = (y >= 0) & self.scorable[self.first:self.last]
        return np.where(ok, y, UNSCORED)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of CNN-LSTM training (the protocol of :mod:`sleepnet.train.training`).

    Parameters
    ----------
    max_passes : int
        Passes over the training blocks at most.
    patience : int
        Passes without a validation gain before stopping.
    batch_blocks : int
        Blocks per optimisation step.
    block_targets : int
        Target epochs (K) per block: a block holds 4 + K consecutive epochs.
    learning_rate : float
        Adam's learning rate.
    weight_decay : float
        Adam's weight decay.
    amplitude_jitter : float
        j: each block scaled by exp(U(-j, j)) in training; 0: none.
    spectral_tilt : float
        t: each block's spectrum multiplied by (f / 10 Hz) ** U(-t, t); 0: none.
    seed : int
        Seeds torch and the block order.
    max_minutes : float, optional
        Stop after this much training time (minutes); None: no limit.
    label_position : int
        The window epoch whose stage is learnt (0 to ``SEQ_LEN - 1``); the last (the
        default) is causal.

    Raises
    ------
    ValueError
        ``label_position`` outside the window.
    """

    max_passes: int = 30
    patience: int = 4
    batch_blocks: int = 8
    block_targets: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    amplitude_jitter: float = 0.25   # blocks scaled by exp(U(-j, j)) in training
    spectral_tilt: float = 0.5       # block spectra multiplied by (f / 10 Hz) ** U(-t, t)
    seed: int = 0
    max_minutes: float | None = None
    label_position: int = SEQ_LEN - 1  # the window epoch whose stage is learnt: last = causal

    def __post_init__(self) -> None:
        if not 0 <= self.label_position < SEQ_LEN:
            raise ValueError(f"label_position must be 0..{SEQ_LEN - 1}, got {self.label_position}")


def trim_range(labels: np.ndarray, wake_epochs: int = TRIM_WAKE_EPOCHS) -> tuple[int, int]:
    """[first, last) epochs kept: sleep plus ``wake_epochs`` of wake either side.

    Parameters
    ----------
    labels : numpy.ndarray
        (n_epochs,) stage codes (0 wake, 1-4 sleep, -1 unscored).
    wake_epochs : int
        Wake epochs (30 s each) kept before the first and after the last sleep epoch
        (:data:`TRIM_WAKE_EPOCHS`: 30 min).

    Returns
    -------
    tuple of int
        (first, last); the whole night when it holds no sleep epoch.
    """
    sleep = np.flatnonzero(labels > 0)
    if not len(sleep):
        return 0, len(labels)
    return max(0, int(sleep[0]) - wake_epochs), min(len(labels), int(sleep[-1]) + 1 + wake_epochs)


def prepare_night(src: NightSource, preprocess: PreprocessConfig) -> PreparedNight:
    """A labelled night through the live path's causal preprocessor, trimmed for training.

    Parameters
    ----------
    src : NightSource
        The labelled night.
    preprocess : PreprocessConfig
        The preprocessing the model is trained with.

    Returns
    -------
    PreparedNight
        Its epochs in model units, labels, scorable flags and trim (:func:`trim_range`).

    Raises
    ------
    ValueError
        The recording has no labels.
    """
    rec = src.recording
    if rec.labels is None:
        raise ValueError(f"{rec.source}: no labels")
    epochs = Preprocessor(rec.sfreq, preprocess).push(rec.eeg_uv)
    n = min(len(epochs), len(rec.labels))
    data = np.stack([e.data for e in epochs[:n]])
    labels = np.asarray(rec.labels[:n], dtype=np.int8)
    first, last = trim_range(labels)
    return PreparedNight(src.name, src.subject, data, labels,
                         np.array([e.scorable for e in epochs[:n]]), first, last)


def _blocks(nights: Sequence[PreparedNight], k: int) -> list[tuple[int, int]]:
    """(night index, first target) for every block of k targets inside each trim."""
    return [(i, s) for i, nt in enumerate(nights) for s in range(nt.first, nt.last, k)]


def window_indices(first: int, k: int, n_epochs: int, label_position: int = SEQ_LEN - 1) -> np.ndarray:
    """Epochs of a block whose k windows label epochs ``first .. first+k-1``.

    Window j of the block is ``idx[j:j+SEQ_LEN]`` and its epoch at ``label_position`` is
    ``first + j``: with the default (last) the window is that epoch and the four before
    it; with 2 (centred) it also holds the two after it. Indices outside the night are
    clipped, i.e. padded by repeating its first (or last) epoch.

    Parameters
    ----------
    first : int
        The first target epoch of the block.
    k : int
        Target epochs in the block.
    n_epochs : int
        Epochs in the night.
    label_position : int
        The window epoch whose stage is learnt (the last by default).

    Returns
    -------
    numpy.ndarray
        (SEQ_LEN - 1 + k,) epoch indices into the night.
    """
    after = SEQ_LEN - 1 - label_position
    return np.clip(np.arange(first - label_position, first + k + after), 0, n_epochs - 1)


def _block_batch(nights: Sequence[PreparedNight], blocks: Sequence[tuple[int, int]], k: int,
                 label_position: int = SEQ_LEN - 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks -> x (B, SEQ_LEN-1+k, 1, n_times) and targets (B, k) (-1 = no target)."""
    xs, ys = [], []
    for i, s in blocks:
        nt = nights[i]
        idx = window_indices(s, k, len(nt.data), label_position)
        xs.append(nt.data[idx])
        t = np.full(k, UNSCORED, dtype=np.int64)
        end = min(s + k, nt.last)
        y = nt.labels[s:end].astype(np.int64)
        ok = (y >= 0) & nt.scorable[s:end]
        t[: end - s] = np.where(ok, y, UNSCORED)
        ys.append(t)
    return torch.from_numpy(np.stack(xs))[:, :, None, :], torch.from_numpy(np.stack(ys))


def block_logits(net: CausalSleepNet, x: torch.Tensor) -> torch.Tensor:
    """(B, SEQ_LEN-1+k, 1, T) -> logits (B, k, classes): each epoch encoded once.

    Parameters
    ----------
    net : CausalSleepNet
        The network.
    x : torch.Tensor
        (B, SEQ_LEN - 1 + k, 1, T) blocks of epochs in model units.

    Returns
    -------
    torch.Tensor
        (B, k, classes) logits of the k windows of each block.
    """
    b, L = x.shape[:2]
    emb = net.encode(x.reshape(b * L, *x.shape[2:])).reshape(b, L, -1)
    win = emb.unfold(1, SEQ_LEN, 1).permute(0, 1, 3, 2)  # (B, k, SEQ_LEN, emb)
    k = win.shape[1]
    logits = net.classify_embeddings(win.reshape(b * k, SEQ_LEN, -1))
    return logits.reshape(b, k, -1)


def tilt_spectra(x: torch.Tensor, exponents: np.ndarray, sfreq_hz: float) -> torch.Tensor:
    """Domain randomisation: scale each block's spectrum by (f / 10 Hz) ** exponent.

    x: (B, L, 1, T) model units; exponents: (B,). Tilts the 1/f slope and the share of
    fast activity, so the network cannot lean on a simulator's exact spectral slope or
    muscle-noise level and has to use the structured cues (alpha, spindles, slow waves,
    K-complexes, eye movements) that real EEG shares with the simulation.

    Parameters
    ----------
    x : torch.Tensor
        (B, L, 1, T) blocks in model units.
    exponents : numpy.ndarray
        (B,) one exponent per block.
    sfreq_hz : float
        The epochs' sampling rate in Hz.

    Returns
    -------
    torch.Tensor
        The tilted blocks, shaped as ``x``.
    """
    n = x.shape[-1]
    f = torch.fft.rfftfreq(n, d=1.0 / sfreq_hz).clamp(min=0.5)
    gain = (f[None, :] / 10.0) ** torch.tensor(exponents, dtype=torch.float32)[:, None]  # (B, F)
    spec = torch.fft.rfft(x, dim=-1) * gain[:, None, None, :]
    return torch.fft.irfft(spec, n=n, dim=-1)


def class_weights(nights: Sequence[PreparedNight]) -> torch.Tensor:
    """Class-balanced loss weights: inverse class frequency of the nights' targets.

    Parameters
    ----------
    nights : sequence of PreparedNight
        The training nights.

    Returns
    -------
    torch.Tensor
        (N_STAGES,) float32 weights with mean 1 over the stages present; 0 for a stage absent.
    """
    y = np.concatenate([nt.targets() for nt in nights])
    counts = np.bincount(y[y >= 0], minlength=N_STAGES).astype(float)
    w = np.where(counts > 0, counts.sum() / (N_STAGES * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w / w[w > 0].mean(), dtype=torch.float32)


@torch.no_grad()
def windowed_stage_codes(net: CausalSleepNet, data: np.ndarray, scorable: np.ndarray,
                         label_position: int = SEQ_LEN - 1) -> np.ndarray:
    """Stage codes (-1 where not scorable) of a whole night, each epoch from the window
    that holds it at ``label_position`` (:func:`window_indices`); for a model trained with
    a label position other than the last, which :class:`CnnLstmStager` cannot run.
    No context restart at unscorable epochs.

    Parameters
    ----------
    net : CausalSleepNet
        The network.
    data : numpy.ndarray
        (n_epochs, n_times) model units.
    scorable : numpy.ndarray
        (n_epochs,) bool.
    label_position : int
        The window epoch whose stage the network was trained on.

    Returns
    -------
    numpy.ndarray
        (n_epochs,) stage codes, -1 where not scorable.
    """
    idx = window_indices(0, len(data), len(data), label_position)
    x = torch.from_numpy(np.ascontiguousarray(data[idx]))[None, :, None, :]
    codes = block_logits(net, x)[0].argmax(dim=1).numpy()
    return np.where(scorable, codes, UNSCORED)


def evaluate_prepared(model: CnnLstmModel, nights: Sequence[PreparedNight],
                      label_position: int = SEQ_LEN - 1) -> tuple[Agreement, list[Agreement]]:
    """Score each night exactly as inference does (CnnLstmStager) and compare in the trim;
    another ``label_position`` scores with :func:`windowed_stage_codes` instead.

    Parameters
    ----------
    model : object
        The CNN-LSTM as loaded from a weights folder (its ``net`` is scored).
    nights : sequence of PreparedNight
        The nights to score.
    label_position : int
        The window epoch whose stage the network was trained on.

    Returns
    -------
    tuple
        (pooled :class:`~sleepnet.metrics.Agreement`, list of one Agreement per night),
        both inside each night's trim.
    """
    from ..preprocess import Epoch

    per, yt, yp = [], [], []
    for nt in nights:
        if label_position == SEQ_LEN - 1:
            epochs = [Epoch(index=i, data=nt.data[i], scorable=bool(nt.scorable[i])) for i in range(len(nt.data))]
            preds = CnnLstmStager(model).score(epochs)
            p = np.array([pr.stage_code for pr in preds])[nt.first:nt.last]
        else:
            p = windowed_stage_codes(model.net, nt.data, nt.scorable, label_position)[nt.first:nt.last]
        t = nt.labels[nt.first:nt.last]
        per.append(agreement(t, p))
        yt.append(t)
        yp.append(p)
    return agreement(np.concatenate(yt), np.concatenate(yp)), per


def train(train_nights: Sequence[PreparedNight], val_nights: Sequence[PreparedNight],
          model_config: ModelConfig, preprocess: PreprocessConfig, cfg: TrainConfig,
          progress: ProgressFn | None = None) -> tuple[CausalSleepNet, dict]:
    """Train with early stopping on validation macro-F1; returns the best net and a history.

    Parameters
    ----------
    train_nights : sequence of PreparedNight
        The training nights.
    val_nights : sequence of PreparedNight
        The validation nights (early stopping); empty: the training loss decides.
    model_config : ModelConfig
        The network's shape.
    preprocess : PreprocessConfig
        The preprocessing the nights went through (its sampling rate tilts the spectra).
    cfg : TrainConfig
        The training settings.
    progress : callable, optional
        ``progress(what, done, total)`` after each step.

    Returns
    -------
    tuple
        (the network of the best pass, in eval mode; a dict with ``best_pass``, the
        per-pass ``history``, ``class_weights``, ``n_parameters`` and ``train_config``).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = CausalSleepNet(model_config)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    weights = class_weights(train_nights)
    loss_fn = nn.CrossEntropyLoss(weight=weights, ignore_index=UNSCORED)
    blocks = _blocks(train_nights, cfg.block_targets)
    best_f1, best_state, best_pass, history = -1.0, None, -1, []
    started = time.monotonic()
    n_steps = -(-len(blocks) // cfg.batch_blocks)
    for p in range(cfg.max_passes):
        net.train()
        order = rng.permutation(len(blocks))
        total, seen = 0.0, 0
        for step in range(n_steps):
            sel = [blocks[j] for j in order[step * cfg.batch_blocks:(step + 1) * cfg.batch_blocks]]
            x, y = _block_batch(train_nights, sel, cfg.block_targets, cfg.label_position)
            if cfg.amplitude_jitter:
                scale = np.exp(rng.uniform(-cfg.amplitude_jitter, cfg.amplitude_jitter, len(sel)))
                x = x * torch.tensor(scale, dtype=torch.float32)[:, None, None, None]
            if cfg.spectral_tilt:
                x = tilt_spectra(x, rng.uniform(-cfg.spectral_tilt, cfg.spectral_tilt, len(sel)),
                                 preprocess.sfreq_hz)
            logits = block_logits(net, x)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(sel)
            seen += len(sel)
            if progress:
                progress(f"pass {p + 1}", step + 1, n_steps)
        net.eval()
        loaded = CnnLstmModel(net, model_config, preprocess=preprocess, model_id="training", source=None)
        val, _ = evaluate_prepared(loaded, val_nights, cfg.label_position) if val_nights else (None, None)
        f1 = val.macro_f1 if val else -total
        history.append({"pass": p + 1, "train_loss": total / max(seen, 1),
                        "val_accuracy": val.accuracy if val else None,
                        "val_macro_f1": val.macro_f1 if val else None,
                        "val_kappa": val.kappa if val else None,
                        "minutes": (time.monotonic() - started) / 60})
        log.info("pass %d: loss %.4f val acc %s mf1 %s", p + 1, history[-1]["train_loss"],
                 history[-1]["val_accuracy"], history[-1]["val_macro_f1"])
        if f1 > best_f1:
            best_f1, best_state, best_pass = f1, copy.deepcopy(net.state_dict()), p + 1
        elif p + 1 - best_pass >= cfg.patience:
            break
        if cfg.max_minutes and (time.monotonic() - started) / 60 > cfg.max_minutes:
            log.info("stopping: %.1f min time budget used", cfg.max_minutes)
            break
    net.load_state_dict(best_state)
    net.eval()
    info = {"best_pass": best_pass, "history": history, "class_weights": weights.tolist(),
            "n_parameters": count_parameters(net), "train_config": asdict(cfg)}
    return net, info


def split_by_subject(nights: Sequence[NightSource], val_fraction: float, seed: int
                     ) -> tuple[list[NightSource], list[NightSource]]:
    """Hold out whole subjects for validation.

    Parameters
    ----------
    nights : sequence of NightSource
        The labelled nights.
    val_fraction : float
        Share of the subjects held out (at least one when there are two or more subjects).
    seed : int
        Seeds the choice of subjects.

    Returns
    -------
    tuple of list
        (training nights, validation nights).
    """
    subjects = sorted({n.subject for n in nights})
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(len(subjects) * val_fraction))) if len(subjects) > 1 else 0
    val_subjects = set(rng.permutation(subjects)[:n_val].tolist())
    return ([n for n in nights if n.subject not in val_subjects],
            [n for n in nights if n.subject in val_subjects])


PROTOCOL = {
    "split": "subject-wise (validation and test subjects never seen in training)",
    "trim": f"{TRIM_WAKE_EPOCHS // 2} min of wake kept before the first and after the last sleep epoch",
    "stages": "W, N1, N2, N3 (R&K 3+4 merged), REM; unscored and movement epochs never targets",
    "windows": f"{SEQ_LEN} epochs, label of the LAST epoch, never crossing recordings, first epochs padded by repeating the first",
    "filter": "the live path's causal 0.3-35 Hz Butterworth (sosfilt), never zero-phase",
    "loss": "class-balanced cross-entropy (inverse class frequency)",
    "augmentation": "per block: amplitude x exp(U(-0.25, 0.25)), spectral tilt (f/10 Hz)**U(-0.5, 0.5)",
    "early_stopping": "validation subjects' macro-F1",
}
