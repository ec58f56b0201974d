"""The CNN–LSTM kind (``cnn-lstm``): its loaded model, its stager and its weights folder.

The network itself is :class:`sleepnet.models.cnn_lstm.CausalSleepNet`. Imports torch: this
module is imported only when a CNN–LSTM is loaded (see :data:`sleepnet.models.base.KINDS`).

A folder of this kind holds ``model_weights.pth`` (:data:`WEIGHTS_FILE`, a state dict),
``config.json`` (architecture + preprocessing), ``label_map.json`` and ``MODEL_CARD.md``.
Loading checks the files against this code and fails with one clear line on any mismatch or
corrupt file.

Epochs to stages (:class:`CnnLstmStager`): encode each epoch once, run the LSTM over the
current epoch and the four before it (:data:`SEQ_LEN` = 5), and say the stage of the LAST
one. Context rule (the same in batch and live, because both use :class:`CnnLstmStager`):

* The window for epoch i is epochs i-4..i. It never spans an unscored epoch (a gap,
  a flat line, a mostly clipped epoch) nor the recording start: the context restarts
  after any unscored epoch.
* An epoch with fewer than four scorable predecessors since the last restart is padded
  on the left by repeating the first epoch of its segment, and flagged ``warmup``.
* An unscored epoch gets stage ``UNS``, NaN probabilities and its quality flags.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..doc_sections import sections_of
from ..errors import WeightsError
from ..predictions import StagePrediction, predictions_from
from ..preprocess import Epoch, PreprocessConfig
from ..stages import STAGES
from . import base
from .cnn_lstm import CausalSleepNet, ModelConfig, count_parameters

KIND = "cnn-lstm"
SEQ_LEN = 5                            # epochs per window: the current one and the four before it
WEIGHTS_FILE = "model_weights.pth"     # the state dict in a folder of this kind
ENCODE_BATCH = 256                     # epochs encoded per CNN call


class CnnLstmStager:
    """Stateful CNN–LSTM stager: feed epochs in order (one at a time live, all at once in batch).

    Parameters
    ----------
    model : CnnLstmModel
        The loaded model.
    session_start : str, optional
        Taken and ignored (``CnnLstmModel.new_stager`` passes it): the CNN–LSTM keeps no
        night clock, and its stagers' ``session_start`` is None.
    """

    session_start = None      # no clock: the CNN–LSTM sees five epochs and nothing of the night

    def __init__(self, model: CnnLstmModel, session_start: str | None = None) -> None:
        self.model = model
        self._context: deque[torch.Tensor] = deque(maxlen=SEQ_LEN)

    def __repr__(self) -> str:
        return f"<CnnLstmStager {self.model.model_id}: {len(self._context)} of {SEQ_LEN} epochs in the window>"

    def reset(self) -> None:
        """Forget the context (a new recording, or a break in the signal)."""
        self._context.clear()

    @sections_of(base.Stager.skip, "Epochs passed unseen: the window restarts (the CNN–LSTM keeps no night state).")
    def skip(self, n_epochs: int) -> None:
        if n_epochs > 0:
            self._context.clear()

    def state(self) -> dict:
        """The CNN–LSTM holds nothing beyond its 5-epoch window: nothing to carry over.

        Returns
        -------
        dict
            ``{"kind": "cnn-lstm"}``.
        """
        return {"kind": "cnn-lstm"}

    def restore(self, state: dict) -> None:
        """Nothing to restore; the window restarts (any state is taken, none refused).

        Parameters
        ----------
        state : dict
            What :meth:`state` gave; not read, since the CNN–LSTM carries nothing over a
            restart.
        """
        self._context.clear()

    @torch.no_grad()
    @sections_of(base.Stager.score, """Stages of ``epochs`` in order: each epoch's is the stage of the last
        epoch of its five-epoch window, the scorable epochs encoded ``ENCODE_BATCH`` (256) at a time.""")
    def score(self, epochs: Sequence[Epoch]) -> list[StagePrediction]:
        if not epochs:
            return []
        scorable = [e for e in epochs if e.scorable]
        emb: dict[int, torch.Tensor] = {}
        if scorable:
            x = torch.from_numpy(np.stack([e.data for e in scorable]))[:, None, :]
            parts = [self.model.net.encode(x[i:i + ENCODE_BATCH]) for i in range(0, len(x), ENCODE_BATCH)]
            allemb = torch.cat(parts)
            emb = {e.index: allemb[k] for k, e in enumerate(scorable)}
        windows: list[torch.Tensor] = []
        slots: list[tuple[Epoch, bool]] = []
        for e in epochs:
            if not e.scorable:
                self._context.clear()
                slots.append((e, False))
                continue
            self._context.append(emb[e.index])
            ctx = list(self._context)
            warm = len(ctx) < SEQ_LEN
            ctx = [ctx[0]] * (SEQ_LEN - len(ctx)) + ctx
            windows.append(torch.stack(ctx))
            slots.append((e, warm))
        probs = None
        if windows:
            logits = self.model.net.classify_embeddings(torch.stack(windows))
            probs = torch.softmax(logits.double(), dim=1).numpy()
        return predictions_from(slots, probs)


@dataclass(frozen=True, repr=False)
class CnnLstmModel(base.FolderModel, kind=KIND, what="CNN–LSTM", stager=CnnLstmStager):
    """A CNN–LSTM in eval mode with the configuration it was trained with.

    Parameters
    ----------
    net : CausalSleepNet
        The network, eval mode.
    model_config : ModelConfig
        Its architecture.
    {identity}
    """

    net: CausalSleepNet
    model_config: ModelConfig

    def _contents(self) -> str:
        return f"{count_parameters(self.net)} parameters"


@sections_of(base.FolderLoader.__call__, """The CNN–LSTM of a weights folder: the network in eval mode, with its preprocessing.
    Refused with one line naming the file: an incomplete or invalid config, an architecture
    this code cannot score (window length, classes, rate), a missing or corrupt state dict,
    weights that do not fit the architecture.""")
def load_folder(d: Path, cfg: dict) -> CnnLstmModel:
    with base.config_entries(d):
        known = {f.name for f in fields(ModelConfig)}
        unknown = set(cfg["model"]) - known
        if unknown:
            raise WeightsError(f"{d / base.CONFIG_FILE}: unknown model settings {sorted(unknown)}")
        mcfg = ModelConfig(**cfg["model"])
        pcfg = PreprocessConfig.from_dict(cfg["preprocess"])
    if mcfg.seq_len != SEQ_LEN:
        raise WeightsError(f"{d / base.CONFIG_FILE}: sequence length {mcfg.seq_len}, this code scores windows of {SEQ_LEN}")
    if mcfg.n_classes != len(STAGES):
        raise WeightsError(f"{d / base.CONFIG_FILE}: {mcfg.n_classes} classes, expected {len(STAGES)}")
    if (mcfg.sfreq_hz, mcfg.epoch_s) != (pcfg.sfreq_hz, pcfg.epoch_s):
        raise WeightsError(f"{d / base.CONFIG_FILE}: model expects {mcfg.sfreq_hz} Hz x {mcfg.epoch_s} s but preprocessing gives {pcfg.sfreq_hz} Hz x {pcfg.epoch_s} s")
    wpath = d / WEIGHTS_FILE
    if not wpath.exists():
        raise WeightsError(f"{wpath}: missing")
    try:
        state = torch.load(wpath, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{wpath}: corrupt or unreadable state dict ({exc.__class__.__name__})") from None
    net = CausalSleepNet(mcfg)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise WeightsError(f"{wpath}: weights do not fit the architecture in {base.CONFIG_FILE} ({first})") from None
    net.eval()
    return CnnLstmModel(net=net, model_config=mcfg, preprocess=pcfg, **base.folder_identity(d, cfg, "CNN–LSTM"))


@base.fill_doc
def save_model(out_dir: str | Path, net: CausalSleepNet, preprocess: PreprocessConfig,
               model_id: str, extra: dict | None = None) -> Path:
    """Write a ``cnn-lstm`` weights folder (state dict, config, label map).

    Parameters
    ----------
    {out_dir}
    net : CausalSleepNet
        The trained network.
    preprocess : PreprocessConfig
        The preprocessing it was trained with.
    model_id : str
        The model's name in ``config.json``.
    extra : dict, optional
        More entries for ``config.json``.

    Returns
    -------
    Path
        The folder.
    """
    d = base.write_folder_config(out_dir, KIND, model_id, {
        "model": net.cfg.as_dict(), "preprocess": preprocess.as_dict()},
        {"sequence_length": SEQ_LEN, "labels": "last epoch of the window"}, extra)
    torch.save(net.state_dict(), d / WEIGHTS_FILE)
    return d
