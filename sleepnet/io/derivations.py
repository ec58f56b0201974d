"""Channels by name, or derived from referential channels: ``A-B``, ``A-(B+C)/2``.

Most amplifiers send each electrode against a common reference (``Fpz``, ``Cz``, ``F4``,
``M1`` ...), while sleep is scored on derivations such as Fpz–Cz (the default model's
montage), F4–M1 or C4–M1. :func:`resolve_derivation` turns what a user names into a
:class:`Derivation`: the channel indices, the weight of each, and the name to show.

Rules, in order:

1. A channel whose label is the text itself wins (exact, then matched as the file readers
   match labels: case, spaces, an ``EEG`` prefix and a ``-Ref`` suffix ignored), so a
   bipolar channel labelled ``EEG Fpz-Cz`` is picked as it is.
2. Otherwise the text is read as ``POS-NEG``, where each side is one electrode (``Cz``) or
   the mean of several (``(M1+M2)/2``; the divisor may be any positive number), and each
   electrode is matched among the labels the same tolerant way. Labels may themselves hold
   a ``-``: every top-level ``-`` is tried as the split, left to right, and the first split
   whose two sides both resolve is used.
3. Nothing fits: one :class:`~sleepnet.errors.InputFileError` line listing the channels
   there are, naming the missing electrodes when some of a derivation's are there.

:meth:`Derivation.apply` computes the derived signal sample by sample, in float64, with
the same operations in the same order whatever the number of samples: the file readers,
the API and the live streamer call it alike, so a derivation is bit-identical live and in
batch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputFileError

#: The channel scored when none is named: the default model's montage, Fpz–Cz. Labels are
#: matched as rule 1 of the module text says, so it finds Sleep-EDF's ``EEG Fpz-Cz`` and a
#: stream's ``Fpz-Cz`` alike, or derives it from referential ``Fpz`` and ``Cz`` channels.
DEFAULT_CHANNEL = "Fpz-Cz"

_REF_SUFFIX = re.compile(r"[\s_\-:./]*ref$", re.IGNORECASE)
_EEG_PREFIX = re.compile(r"^eeg[\s_:-]*", re.IGNORECASE)
_GROUP = re.compile(r"^\((?P<body>[^()]+)\)(?:\s*/\s*(?P<div>[0-9]*\.?[0-9]+))?$")


def normalise_label(name: str) -> str:
    """The key a channel label is matched by.

    ``'EEG Fpz-Cz'`` -> ``'fpzcz'``, ``'F3-REF'`` -> ``'f3'``: case, spaces, separators, an
    ``EEG`` prefix and a ``-Ref`` suffix ignored (the file readers' matching).

    Parameters
    ----------
    name : str
        A channel label.

    Returns
    -------
    str
        The lower-case key (a channel called just ``Ref`` keeps its name).
    """
    s = name.strip()
    s = _EEG_PREFIX.sub("", s)
    stripped = _REF_SUFFIX.sub("", s)
    if stripped:                     # a channel called just "Ref" keeps its name
        s = stripped
    return re.sub(r"[\s_\-:./]", "", s.lower())


def match_label(available: list[str] | tuple[str, ...], wanted: str) -> int | None:
    """Index of the channel ``wanted`` names (exact label first, then tolerant), or None.

    Parameters
    ----------
    available : list or tuple of str
        Channel labels, in channel order.
    wanted : str
        The label asked for.

    Returns
    -------
    int or None
        The first channel whose label is ``wanted``, else the first whose
        :func:`normalise_label` key is the same; None when none is.
    """
    for i, ch in enumerate(available):
        if ch == wanted:
            return i
    key = normalise_label(wanted)
    if not key:
        return None
    return next((i for i, ch in enumerate(available) if normalise_label(ch) == key), None)


def display_label(label: str) -> str:
    """A channel label without its ``EEG`` prefix and ``-Ref`` suffix (``'EEG F3'`` -> ``'F3'``).

    Parameters
    ----------
    label : str
        A channel label as the recording names it, e.g. ``'EEG Fpz-Cz'`` or ``'C3-Ref'``.

    Returns
    -------
    str
        The label to show (the label itself, stripped, when nothing else is left).
    """
    s = _EEG_PREFIX.sub("", label.strip())
    return _REF_SUFFIX.sub("", s) or label.strip()


@dataclass(frozen=True)
class Derivation:
    """One signal to score: a channel as it is, or a weighted sum of channels.

    Parameters
    ----------
    indices : tuple of int
        Channels used, 0-based, in the order their terms are summed.
    weights : tuple of float
        Weight of each (``A-(B+C)/2``: 1, -0.5, -0.5).
    name : str
        What to show: the channel's own label, or the derivation written with the
        labels found (``'F3-C3'``, ``'C4-(M1+M2)/2'``).
    labels : tuple of str
        The labels of the channels used.
    """

    indices: tuple[int, ...]
    weights: tuple[float, ...]
    name: str
    labels: tuple[str, ...]

    @property
    def is_single(self) -> bool:
        """True when one channel is used as it is (no arithmetic)."""
        return len(self.indices) == 1 and self.weights == (1.0,)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """The derived signal of ``data``.

        Parameters
        ----------
        data : ndarray, shape (n_samples, n_channels)
            Samples of every channel (any float dtype; NaN stays NaN).

        Returns
        -------
        ndarray, shape (n_samples,), float64
            ``sum_k weights[k] * data[:, indices[k]]``, summed term by term in float64,
            so any split of the samples into chunks gives the same values bit for bit.
        """
        out = np.asarray(data[:, self.indices[0]], dtype=np.float64) * self.weights[0]
        for i, w in zip(self.indices[1:], self.weights[1:]):
            out += np.asarray(data[:, i], dtype=np.float64) * w
        return out

    def __repr__(self) -> str:
        terms = ", ".join(f"{w:+g}*{lb}" for w, lb in zip(self.weights, self.labels))
        return f"<Derivation {self.name!r}: {terms}>"


def _top_level(text: str, chars: str) -> list[int]:
    """Positions of ``chars`` outside parentheses."""
    depth, out = 0, []
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and c in chars:
            out.append(i)
    return out


def _side(available: list[str], text: str) -> tuple[list[tuple[int, float]], str, list[str]] | None:
    """One side of a derivation: (index, weight) terms, its display text, and the names
    that matched no channel (None when the text is not a side at all)."""
    text = text.strip()
    if not text:
        return None
    m = _GROUP.match(text)
    if m:
        parts = [p.strip() for p in m.group("body").split("+")]
        if any(not p for p in parts):
            return None
        div = float(m.group("div")) if m.group("div") else 1.0
        if not div > 0:
            return None
        hits = [match_label(available, p) for p in parts]
        missing = [p for p, h in zip(parts, hits) if h is None]
        shown = "(" + "+".join(display_label(available[h]) if h is not None else p
                                for p, h in zip(parts, hits)) + ")" + (f"/{m.group('div')}" if m.group("div") else "")
        terms = [(h, 1.0 / div) for h in hits if h is not None]
        return terms, shown, missing
    if any(c in text for c in "()+/"):
        return None
    h = match_label(available, text)
    if h is None:
        return [], text, [text]
    return [(h, 1.0)], display_label(available[h]), []


def resolve_derivation(available: list[str] | tuple[str, ...], wanted: str, source: str) -> Derivation:
    """What ``wanted`` names among the channel labels ``available`` (see the module text).

    Parameters
    ----------
    available : sequence of str
        Channel labels, in channel order.
    wanted : str
        A channel label, or a derivation ``A-B`` / ``A-(B+C)/2``.
    source : str
        The file or stream, for the error message.

    Returns
    -------
    Derivation
        The electrodes' channel indices and weights, and the name to show.

    Raises
    ------
    InputFileError
        No such channel and no derivation whose electrodes are all there (one line that
        names what is missing and lists the channels there are), or a derivation that
        cancels to nothing (``A-A``).
    """
    available = list(available)
    wanted = str(wanted).strip()
    have = ", ".join(available) or "none"
    idx = match_label(available, wanted)
    if idx is not None:
        return Derivation((idx,), (1.0,), available[idx], (available[idx],))
    best_missing: list[str] | None = None
    for pos in _top_level(wanted, "-"):
        left, right = _side(available, wanted[:pos]), _side(available, wanted[pos + 1:])
        if left is None or right is None:
            continue
        missing = left[2] + right[2]
        if missing:
            found_some = bool(left[0] or right[0])
            if found_some and (best_missing is None or len(missing) < len(best_missing)):
                best_missing = missing      # some electrodes are there: say which are not
            continue
        weights: dict[int, float] = {}
        for i, w in left[0]:
            weights[i] = weights.get(i, 0.0) + w
        for i, w in right[0]:
            weights[i] = weights.get(i, 0.0) - w
        used = [(i, w) for i, w in weights.items() if w != 0.0]
        if not used:
            raise InputFileError(f"{source}: '{wanted}' cancels to nothing (the same electrode on both sides)")
        return Derivation(tuple(i for i, _ in used), tuple(w for _, w in used), f"{left[1]}-{right[1]}",
                          tuple(available[i] for i, _ in used))
    if best_missing:
        names = ", ".join(f"'{m}'" for m in best_missing)
        raise InputFileError(f"{source}: no channel '{wanted}', and no electrode {names} to derive it from; "
                             f"it has: {have}")
    raise InputFileError(f"{source}: no channel matching '{wanted}'; it has: {have}")
