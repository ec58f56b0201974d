"""The causal recurrent stager (model kind ``gru``): a one-layer, one-direction GRU over the
night's sequence of epochs, run in numpy (no torch to score).

Each scorable epoch gives the GRU one step of :data:`GRU_INPUTS` numbers, all from the
night-context row the feature stager uses (:class:`sleepnet.night_context.NightContext`,
the one place rows are built): the epoch's nine base features, the same minus the
night's shrunk baseline, the hours since the session start (0 when the session start is
unknown), whether that clock is known (1/0), and how much of the baseline is the night's
own. Inputs are standardised with the training rows' means and scales (stored with the
weights). The hidden vector carries the night: where the cycle is, what came an hour ago.
Unscored epochs and epochs missed while the scorer was down advance the clock and leave
the hidden vector as it was (the GRU sees the next scorable epoch next).

A model may hold several GRUs of the same shape (trained from different seeds): its
probabilities are the mean of theirs.

A folder of this kind holds ``config.json`` (``kind``, preprocessing, night context, the
GRU's shape), ``label_map.json``, ``gru.npz`` (plain arrays, read with
``allow_pickle=False``) and ``MODEL_CARD.md``.

The recurrence is torch's ``nn.GRU`` (Cho et al. 2014, as torch writes it: reset gate
applied after the hidden-to-hidden product), exported array for array; the tests check
this forward against torch's to float32 precision. Staging from a recurrent network
over per-epoch features follows e.g. Phan et al. 2019 (SeqSleepNet), made causal.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..doc_sections import sections_of
from ..errors import WeightsError
from ..night_context import (
    HOURS_COLUMN,
    INPUT_NAMES,
    N_BASE,
    UNKNOWN_START,
    ContextConfig,
    check_session_start,
)
from ..predictions import StagePrediction, predictions_from
from ..preprocess import Epoch, PreprocessConfig
from ..stages import N_STAGES
from . import base

KIND = "gru"
GRU_FILE = "gru.npz"
_REL0 = INPUT_NAMES.index("rel_" + INPUT_NAMES[0][len("cur_"):])
_WEIGHT_COLUMN = INPUT_NAMES.index("night_weight")
GRU_INPUTS: tuple[str, ...] = (INPUT_NAMES[:N_BASE] + INPUT_NAMES[_REL0:_REL0 + N_BASE]
                               + ("hours", "clock_known", "night_weight"))
N_GRU_INPUTS = len(GRU_INPUTS)
ARRAYS = ("input_mean", "input_scale", "w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out")


def gru_inputs(rows: np.ndarray) -> np.ndarray:
    """Night-context rows -> the GRU's raw inputs (before standardisation).

    Parameters
    ----------
    rows : numpy.ndarray
        (n, 56) or (56,) rows of :class:`sleepnet.night_context.NightContext` (base features).

    Returns
    -------
    numpy.ndarray
        (n, :data:`N_GRU_INPUTS`) float64: current features, relative features, hours
        (0 where NaN: no clock), clock known (1/0), night weight.
    """
    R = np.asarray(rows, dtype=np.float64).reshape(-1, len(INPUT_NAMES))
    hours = R[:, HOURS_COLUMN]
    known = ~np.isnan(hours)
    return np.concatenate([R[:, :N_BASE], R[:, _REL0:_REL0 + N_BASE], np.where(known, hours, 0.0)[:, None],
                           known[:, None].astype(np.float64), R[:, _WEIGHT_COLUMN:_WEIGHT_COLUMN + 1]], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True, repr=False)
class GruNets:
    """M GRUs of the same shape, with their read-outs, as float64 arrays.

    Parameters
    ----------
    input_mean, input_scale : numpy.ndarray
        (I,): inputs are standardised as ``(x - input_mean) / input_scale``.
    w_ih, w_hh : numpy.ndarray
        (M, 3H, I) and (M, 3H, H): torch's ``weight_ih_l0`` / ``weight_hh_l0`` (gates r, z, n).
    b_ih, b_hh : numpy.ndarray
        (M, 3H): torch's ``bias_ih_l0`` / ``bias_hh_l0``.
    w_out, b_out : numpy.ndarray
        (M, 5, H) and (M, 5): the linear read-out of the hidden vector (logits in
        label-map order).
    """

    input_mean: np.ndarray
    input_scale: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray

    def __repr__(self) -> str:
        return f"<GruNets {self.n_members} x GRU({self.n_inputs} -> {self.hidden}) -> {N_STAGES}>"

    @property
    def n_members(self) -> int:
        """M, the number of GRUs (their probabilities are averaged)."""
        return int(self.w_ih.shape[0])

    @property
    def hidden(self) -> int:
        """H, the size of each GRU's hidden vector."""
        return int(self.w_hh.shape[2])

    @property
    def n_inputs(self) -> int:
        """I, the number of inputs per step."""
        return int(self.w_ih.shape[2])

    @classmethod
    def from_arrays(cls, arrays: dict) -> GruNets:
        """The nets from their arrays, checked.

        Parameters
        ----------
        arrays : dict
            Name -> array for each of :data:`ARRAYS` (as :meth:`arrays` gives them, or
            ``gru.npz`` holds them).

        Returns
        -------
        GruNets
            The nets, as float64 arrays.

        Raises
        ------
        ValueError
            An array of the wrong shape, a non-finite value, or a scale <= 0.
        """
        a = {k: np.asarray(arrays[k], dtype=np.float64) for k in ARRAYS}
        if a["w_ih"].ndim != 3:
            raise ValueError(f"w_ih has shape {a['w_ih'].shape}, expected (members, 3*hidden, inputs)")
        m, h3, i = a["w_ih"].shape
        h = h3 // 3
        want = {"input_mean": (i,), "input_scale": (i,), "w_ih": (m, 3 * h, i), "w_hh": (m, 3 * h, h),
                "b_ih": (m, 3 * h), "b_hh": (m, 3 * h), "w_out": (m, N_STAGES, h), "b_out": (m, N_STAGES)}
        for k, shape in want.items():
            if a[k].shape != shape:
                raise ValueError(f"{k} has shape {a[k].shape}, expected {shape}")
            if not np.isfinite(a[k]).all():
                raise ValueError(f"{k} holds non-finite values")
        if h3 != 3 * h or h == 0 or m == 0:
            raise ValueError(f"w_ih has shape {a['w_ih'].shape}: not 3 gates of a hidden size")
        if np.any(a["input_scale"] <= 0):
            raise ValueError("input_scale holds values <= 0")
        return cls(**a)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, as saved.

        Returns
        -------
        dict of str to numpy.ndarray
            One entry per name of :data:`ARRAYS`.
        """
        return {k: getattr(self, k) for k in ARRAYS}

    def zero_state(self) -> np.ndarray:
        """The hidden vectors of a fresh night.

        Returns
        -------
        numpy.ndarray
            (M, H) zeros.
        """
        return np.zeros((self.n_members, self.hidden))

    def step(self, h: np.ndarray, x_raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One epoch's step of every GRU.

        Always the same operations on arrays of the same shapes, one epoch at a time:
        an epoch scored alone gives bit for bit what it gives in a whole night.

        Parameters
        ----------
        h : numpy.ndarray
            (M, H) hidden vectors before the epoch.
        x_raw : numpy.ndarray
            (I,) raw inputs of the epoch (:func:`gru_inputs`).

        Returns
        -------
        h_new : numpy.ndarray
            (M, H) hidden vectors after it.
        probabilities : numpy.ndarray
            (5,) the mean of the members' softmax, in label-map order.
        """
        m, hid = h.shape
        x = (x_raw - self.input_mean) / self.input_scale
        gi = (np.matmul(self.w_ih, x) + self.b_ih).reshape(m, 3, hid)                    # gates r, z, n
        gh = (np.matmul(self.w_hh, h[:, :, None])[:, :, 0] + self.b_hh).reshape(m, 3, hid)
        rz = _sigmoid(gi[:, :2] + gh[:, :2])
        n = np.tanh(gi[:, 2] + rz[:, 0] * gh[:, 2])
        z = rz[:, 1]
        h_new = (1.0 - z) * n + z * h
        logits = np.matmul(self.w_out, h_new[:, :, None])[:, :, 0] + self.b_out               # (M, 5)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return h_new, p.sum(axis=0) / m

    def run(self, x_raw: np.ndarray, h: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Step through a sequence of epochs.

        Parameters
        ----------
        x_raw : numpy.ndarray
            (T, I) raw inputs, one row per scorable epoch.
        h : numpy.ndarray, optional
            (M, H) hidden vectors to start from (default: zeros, a fresh night).

        Returns
        -------
        probabilities : numpy.ndarray
            (T, 5) per epoch.
        h : numpy.ndarray
            (M, H) the last hidden vectors.
        """
        h = self.zero_state() if h is None else h
        out = np.zeros((len(x_raw), N_STAGES))
        for t in range(len(x_raw)):
            h, out[t] = self.step(h, x_raw[t])
        return out, h


@sections_of(base.NightContextStager, """Stateful scorer of a :class:`GruModel`: batch and live feed it the same epochs, one
        GRU step per scorable epoch. State across restarts: the night context and the
        hidden vectors (JSON floats round-trip exactly, so a restored stager carries on bit
        for bit). Epochs are flagged ``warmup`` while the night context holds fewer than
        four epochs since the session start or a break, as with the feature stager.""")
class GruStager(base.NightContextStager):
    kind = KIND

    def __init__(self, model: GruModel, session_start: str | None = None) -> None:
        super().__init__(model, session_start)
        self._h = model.nets.zero_state()

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, |h|={float(np.abs(self._h).mean()):.3f}>"

    def reset(self) -> None:
        """Forget the night: a new session (the hidden vectors back to zero)."""
        super().reset()
        self._h = self.model.nets.zero_state()

    def state(self) -> dict:
        """The night so far, as JSON-ready values (for the state file).

        Returns
        -------
        dict
            ``kind``, ``model_id``, ``session_start``, the night context's state and the
            hidden vectors.
        """
        return {**super().state(), "hidden": [[float(v) for v in row] for row in self._h]}

    def restore(self, state: dict) -> None:
        """Carry on from a saved night (its session start and hidden vectors included).

        Parameters
        ----------
        state : dict
            A saved night of this model, hidden vectors and all.

        Raises
        ------
        ValueError
            A state of another model, kind or shape (the stager is then left as it was).
        """
        start = self._state_start(state)
        h = np.asarray(state.get("hidden"), dtype=np.float64)
        if h.shape != self._h.shape or not np.isfinite(h).all():
            raise ValueError(f"hidden state of shape {h.shape}, this model's is {self._h.shape}")
        self._restore_context(state, start)
        self._h = h

    @sections_of(base.Stager.score, """Stage epochs in order, one GRU step per scorable epoch, the hidden vectors
        carried from the previous call; an unscorable epoch (``UNS``) leaves them as they were.""")
    def score(self, epochs: Sequence[Epoch]) -> list[StagePrediction]:
        slots: list[tuple[Epoch, bool]] = []
        probs: list[np.ndarray] = []
        nets = self.model.nets
        for e, warm, row in self._rows(epochs):
            slots.append((e, warm))
            if row is not None:
                self._h, p = nets.step(self._h, gru_inputs(row)[0])
                probs.append(p)
        return predictions_from(slots, np.stack(probs) if probs else np.zeros((0, N_STAGES)))


@dataclass(frozen=True, repr=False)
class GruModel(base.NightContextModel, kind=KIND, what="recurrent stager", stager=GruStager):
    """A loaded recurrent stager.

    Parameters
    ----------
    nets : GruNets
        The GRU(s) and the input standardisation.
    {identity}
    {night_context_inputs}
    """

    nets: GruNets

    def _contents(self) -> str:
        return repr(self.nets)


@sections_of(base.FolderLoader.__call__, """The recurrent model of a weights folder; a config that names no
    ``default_session_start`` means ``unknown``. Refused with one line naming the file: an
    incomplete config, GRU inputs other than :data:`GRU_INPUTS`, a missing or unusable
    ``gru.npz``, an unknown ``default_session_start``.""")
def load_folder(d: Path, cfg: dict) -> GruModel:
    with base.config_entries(d):
        pcfg = PreprocessConfig.from_dict(cfg["preprocess"])
        ccfg = ContextConfig.from_dict(cfg["context"])
        inputs = list(cfg["gru"]["inputs"])
        start = check_session_start(str(cfg.get("default_session_start", UNKNOWN_START)))
    if inputs != list(GRU_INPUTS):
        raise WeightsError(f"{d / base.CONFIG_FILE}: the GRU's inputs {inputs} differ from this code's {list(GRU_INPUTS)}")
    path = d / GRU_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: missing (a {KIND} folder holds its arrays in {GRU_FILE})")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAYS if k not in z.files]
            if missing:
                raise ValueError(f"no array {', '.join(missing)}")
            nets = GruNets.from_arrays({k: z[k] for k in ARRAYS})
    except (OSError, ValueError, EOFError) as exc:
        raise WeightsError(f"{path}: not a usable GRU weights file ({exc})") from None
    except Exception as exc:       # a damaged zip raises zipfile.BadZipFile and others
        raise WeightsError(f"{path}: not a usable GRU weights file ({exc.__class__.__name__}: {exc})") from None
    if nets.n_inputs != N_GRU_INPUTS:
        raise WeightsError(f"{path}: GRUs of {nets.n_inputs} inputs, this code makes {N_GRU_INPUTS}")
    return GruModel(nets=nets, context=ccfg, preprocess=pcfg, default_session_start=start,
                    **base.folder_identity(d, cfg, "recurrent stager"))


@base.fill_doc
def save_gru_model(out_dir: str | Path, nets: GruNets, context: ContextConfig, model_id: str, summary: str,
                   extra: dict | None = None) -> Path:
    """Write a ``gru`` folder: config, label map, the arrays (``gru.npz``, no pickle).

    Parameters
    ----------
    {out_dir}
    nets : GruNets
        The trained nets.
    context : ContextConfig
        The night context they were trained with.
    {config_tail}
    """
    d = base.write_folder_config(out_dir, KIND, model_id, {
        "summary": summary, "preprocess": PreprocessConfig().as_dict(), "context": context.as_dict(),
        "gru": {"file": GRU_FILE, "members": nets.n_members, "hidden": nets.hidden, "inputs": list(GRU_INPUTS)},
        "default_session_start": UNKNOWN_START},
        {"inputs": "each scorable epoch in turn, one GRU step; the hidden vector carries the night",
         "labels": "current epoch"}, extra)
    np.savez(d / GRU_FILE, **{k: np.asarray(v, dtype=np.float64) for k, v in nets.arrays().items()})
    return d
