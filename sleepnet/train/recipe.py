"""What every training recipe does alike: it writes itself out as plain values.

A recipe is a frozen dataclass of training settings (:class:`~sleepnet.train.feature_training.FeatureTrainConfig`,
:class:`~sleepnet.train.gru_training.GruTrainConfig`,
:class:`~sleepnet.train.gru_training.EnsembleTrainConfig`); the trained model's
``metrics.json`` keeps it as :meth:`Recipe.as_dict` gives it.
"""
from __future__ import annotations

from dataclasses import asdict

__all__ = ["Recipe"]


class Recipe:
    """Mixin for a training recipe (a dataclass): :meth:`as_dict`."""

    def as_dict(self) -> dict:
        """The recipe as plain values (written into a trained model's ``metrics.json``).

        Returns
        -------
        dict
            Every field by name, in field order, each an int, float, bool, str or None; a
            field that is itself a recipe (an ensemble's members) as a dict of its own.
        """
        return asdict(self)  # type: ignore[call-overload]  # a Recipe is a dataclass
