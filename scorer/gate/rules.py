"""Stimulation-window rules: when a window may open, when it must close.

A rule comes from ``sleepstream live --gate`` as nothing (the default rule), a TOML
file, or inline ``key=value`` pairs separated by commas::

    [gate]                      # inline: stages=N2+N3,min_probability=0.8,epochs=2,max_open_s=1800
    stages = ["N2", "N3"]       # the stages a window may open in
    min_probability = 0.8       # the scored stage's probability, at least
    epochs = 2                  # consecutive epochs meeting the rule before a window opens
    max_open_s = 1800           # close after this long open (s)
    guard = true                # the arousal guard (inside the epoch)

    [guard]                     # optional: the guard's thresholds (scorer.gate.guard.GuardThresholds)
    hf_ratio = 4.0              # e.g. fewer false closes, more arousals missed
    sustained_ratio = false     # a ratio that may be off (alpha_ratio, sustained_ratio): false = off

Parsed with :mod:`tomllib` (``tomli`` on Python 3.10); a bad rule raises :class:`GateRuleError` naming what is wrong.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleepnet.errors import SleepstreamError, parameter
from sleepnet.stages import STAGES

from .guard import DEFAULT_THRESHOLDS, GuardThresholds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pyproject: tomli there)
    import tomli as tomllib


class GateRuleError(SleepstreamError):
    """A gate rule (file or inline text) that cannot be used."""


@dataclass(frozen=True)
class GateRule:
    """When a stimulation window opens and how long it may stay open.

    Parameters
    ----------
    stages : frozenset of str
        Stages a window may open in.
    min_probability : float
        The scored stage's probability must reach this (0-1).
    epochs : int
        Consecutive epochs meeting both before a window opens.
    max_open_s : float
        Longest a window stays open, s.
    guard : bool
        Whether the arousal guard closes windows inside the epoch.
    thresholds : GuardThresholds
        The guard's thresholds.
    """

    stages: frozenset[str] = frozenset({"N2", "N3"})
    min_probability: float = 0.8
    epochs: int = 2
    max_open_s: float = 1800.0
    guard: bool = True
    thresholds: GuardThresholds = DEFAULT_THRESHOLDS

    def describe(self) -> str:
        """The rule in one line (the reason of a new window's ``open``).

        Returns
        -------
        str
            E.g. ``N2/N3 p>=0.80 x2``: stages in stage order, probability, epochs.
        """
        order = [s for s in STAGES if s in self.stages]
        return f"{'/'.join(order)} p>={self.min_probability:.2f} x{self.epochs}"


DEFAULT_RULE = GateRule()
_KEYS = ("stages", "min_probability", "epochs", "max_open_s", "guard")
#: [guard] settings that may be off (None); ``false`` in TOML.
_OPTIONAL_GUARD = ("alpha_ratio", "sustained_ratio")


def _stages(value: Any, where: str) -> frozenset[str]:
    items = value.replace("+", " ").replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise GateRuleError(f"{where}: stages must be a non-empty list of {', '.join(STAGES)}")
    bad = [s for s in items if s not in STAGES]
    if bad:
        raise GateRuleError(f"{where}: unknown stage(s) {bad}; use {', '.join(STAGES)}")
    return frozenset(items)


def _whole(value: Any, name: str, where: str) -> int:
    """``value`` (a TOML value or inline text) as a whole number; a float (``2.5``, also
    ``2.0``: TOML says whole numbers without a point) or a bool is refused, naming ``name``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise GateRuleError(f"{where}: {name} must be a whole number, got {value!r}")


def _number(value: Any, name: str, where: str) -> float:
    """``value`` (a TOML value or inline text) as a number; a bool is refused, naming ``name``."""
    if not isinstance(value, bool):
        try:
            return float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            pass
    raise GateRuleError(f"{where}: {name} must be a number, got {value!r}")


def rule_from_mapping(gate: dict[str, Any], guard: dict[str, Any] | None = None, where: str = "[gate]") -> GateRule:
    """A :class:`GateRule` from the ``[gate]`` (and ``[guard]``) tables.

    Parameters
    ----------
    gate : dict
        The ``[gate]`` settings (``stages``, ``min_probability``, ``epochs``, ``max_open_s``,
        ``guard``), as TOML values or inline text.
    guard : dict, optional
        The ``[guard]`` settings (:class:`scorer.gate.guard.GuardThresholds` fields).
    where : str
        Where the settings come from, first in each error (a file, or the marked
        parameter and its text: :func:`sleepnet.errors.parameter`).

    Returns
    -------
    GateRule
        The settings given (:class:`GateRule`'s defaults for the others), checked:
        ``min_probability`` within 0-1, ``epochs`` at least 1, ``max_open_s`` positive.

    Raises
    ------
    GateRuleError
        An unknown key or an out-of-range value, after ``where``.
    """
    unknown = sorted(set(gate) - set(_KEYS))
    if unknown:
        raise GateRuleError(f"{where}: unknown setting(s) {unknown}; known: {', '.join(_KEYS)}")
    kw: dict[str, Any] = {}
    try:
        if "stages" in gate:
            kw["stages"] = _stages(gate["stages"], where)
        if "min_probability" in gate:
            kw["min_probability"] = _number(gate["min_probability"], "min_probability", where)
        if "epochs" in gate:
            kw["epochs"] = _whole(gate["epochs"], "epochs", where)
        if "max_open_s" in gate:
            kw["max_open_s"] = _number(gate["max_open_s"], "max_open_s", where)
        if "guard" in gate:
            g = gate["guard"]
            if isinstance(g, str):
                g = {"true": True, "false": False, "on": True, "off": False}.get(g.lower(), g)
            if not isinstance(g, bool):
                raise GateRuleError(f"{where}: guard must be true or false, got {gate['guard']!r}")
            kw["guard"] = g
    except (TypeError, ValueError) as exc:
        raise GateRuleError(f"{where}: {exc}") from None
    rule = GateRule(**kw)
    if not 0.0 <= rule.min_probability <= 1.0:
        raise GateRuleError(f"{where}: min_probability must be within 0-1, got {rule.min_probability}")
    if rule.epochs < 1:
        raise GateRuleError(f"{where}: epochs must be at least 1, got {rule.epochs}")
    if not rule.max_open_s > 0:
        raise GateRuleError(f"{where}: max_open_s must be positive, got {rule.max_open_s}")
    if guard:
        names = {f.name for f in dataclasses.fields(GuardThresholds)}
        unknown = sorted(set(guard) - names)
        if unknown:
            raise GateRuleError(f"{where}: unknown [guard] setting(s) {unknown}; known: {', '.join(sorted(names))}")
        # TOML has no null: false turns an optional check off
        guard = {k: (None if v is False and k in _OPTIONAL_GUARD else v) for k, v in guard.items()}
        try:
            th = dataclasses.replace(DEFAULT_THRESHOLDS, **guard)
        except (TypeError, ValueError) as exc:
            raise GateRuleError(f"{where}: [guard] {exc}") from None
        rule = dataclasses.replace(rule, thresholds=th)
    return rule


def parse_rule(gate: str | None) -> GateRule:
    """The rule a session's ``gate`` option names (``sleepstream live --gate``).

    Parameters
    ----------
    gate : str or None
        None, ``""`` or ``"default"`` (the default rule), a path to a TOML file, or inline
        ``key=value,key=value`` (stages joined with ``+``).

    Returns
    -------
    GateRule
        :data:`DEFAULT_RULE` for None, ``""`` or ``"default"``; else the rule the file or
        the text gives (:func:`rule_from_mapping`).

    Raises
    ------
    GateRuleError
        One line naming the file, or ``gate`` and its inline text, and what is wrong.
    """
    if gate is None or not gate.strip() or gate.strip() == "default":
        return DEFAULT_RULE
    path = Path(gate)
    if gate.endswith(".toml") or path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise GateRuleError(f"{gate}: cannot read the gate rules ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise GateRuleError(f"{gate}: not valid TOML ({exc})") from None
        table = data.get("gate", {})
        guard = data.get("guard", {})
        extra = sorted(set(data) - {"gate", "guard"})
        if extra or not isinstance(table, dict) or not isinstance(guard, dict):
            raise GateRuleError(f"{gate}: expected tables [gate] and [guard] only, found {sorted(data)}")
        return rule_from_mapping(table, guard, where=gate)
    where = f"{parameter('gate')}={gate!r}"
    pairs: dict[str, str] = {}
    for part in gate.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise GateRuleError(f"{where}: expected key=value pairs (e.g. stages=N2+N3,min_probability=0.8) "
                                f"or a .toml file; {part.strip()!r} has no '='")
        pairs[key.strip()] = value.strip()
    return rule_from_mapping(pairs, None, where=where)
