"""Epochs to stages: encode each epoch once, run the LSTM over the current epoch and the
four before it, and say the stage of the LAST one.

Context rule (the same in batch and live, because both use :class:`SequenceScorer`):

* The window for epoch i is epochs i-4..i. It never spans an unscored epoch (a gap,
  a flat line, a mostly clipped epoch) nor the recording start: the context restarts
  after any unscored epoch.
* An epoch with fewer than four scorable predecessors since the last restart is padded
  on the left by repeating the first epoch of its segment, and flagged ``warmup``.
* An unscored epoch gets stage ``UNS``, NaN probabilities and its quality flags.
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np
import torch

from ..preprocess import Epoch
from ..predictions import StagePrediction, predictions_from
from ..weights import SEQ_LEN, LoadedModel

ENCODE_BATCH = 256


class SequenceScorer:
    """Stateful scorer: feed epochs in order (one at a time live, all at once in batch)."""

    session_start = None      # no clock: the CNN–LSTM sees five epochs and nothing of the night

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self._context: deque[torch.Tensor] = deque(maxlen=SEQ_LEN)

    def reset(self) -> None:
        """Forget the context (a new recording, or a break in the signal)."""
        self._context.clear()

    def skip(self, n_epochs: int) -> None:
        """Epochs passed unseen: the window restarts (the CNN–LSTM keeps no night state)."""
        if n_epochs > 0:
            self._context.clear()

    def state(self) -> dict:
        """The CNN–LSTM holds nothing beyond its 5-epoch window: nothing to carry over."""
        return {"kind": "cnn-lstm"}

    def restore(self, state: dict) -> None:
        """Nothing to restore; the window restarts."""
        self._context.clear()

    @torch.no_grad()
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
