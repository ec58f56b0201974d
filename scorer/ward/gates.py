"""Which stimulation-window rule each bed of a ward runs (``sleepstream ward --gate``).

``--gate [RULES]`` gives every bed a rule (the syntax of ``sleepstream live --gate``:
nothing for the default rule, a ``.toml`` file, or inline ``key=value`` pairs);
``--gate-bed PATTERN=RULES`` (repeatable) gives the beds whose name matches the shell
pattern ``PATTERN`` their own rule, or no gate at all with ``PATTERN=off``. The first
``--gate-bed`` that matches a bed decides; a bed matching none gets ``--gate``'s rule (no
gate when ``--gate`` was not given). Every rule is parsed once, when the ward starts,
so a bad one is an error before any worker starts; each gated bed's worker then reads
the parsed rule from ``<bed>.gate.toml`` (written by the ward, beside ``<bed>.tsv``), so a
worker restarted hours later runs exactly the rule the ward was started with, and the
folder records which rule each bed ran.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path

from scorer.gate.rules import GateRule, GateRuleError, parse_rule
from sleepnet.errors import parameter
from sleepnet.stages import STAGES

#: ``--gate-bed PATTERN=off`` (or ``none``): no gate for those beds
NO_GATE_WORDS = ("off", "none", "no")
RULE_FILE_SUFFIX = ".gate.toml"


@dataclass(frozen=True)
class BedGate:
    """One ``--gate-bed PATTERN=RULES``: the beds named like ``pattern`` run ``rule``.

    Made by :func:`parse_bed_gate`; a :class:`GatePlan` holds them in the order given.

    Parameters
    ----------
    pattern : str
        A shell pattern on bed names, case-sensitive (:func:`fnmatch.fnmatchcase`: e.g.
        ``bed-3*``).
    text : str
        The rule as given after the ``=``: ``off``, ``default``, a ``.toml`` file or inline
        ``key=value`` pairs.
    rule : GateRule or None
        The parsed rule (None: no gate, for ``off``, ``none`` or ``no``).
    """

    pattern: str
    text: str
    rule: GateRule | None


@dataclass(frozen=True)
class GatePlan:
    """The rule of every bed: ``per_bed`` (first match wins), else ``default``.

    Parameters
    ----------
    default : GateRule or None
        The rule of a bed no pattern matches (None: no gate).
    per_bed : tuple of BedGate
        The ``--gate-bed`` rules, in the order given.
    """

    default: GateRule | None = None
    per_bed: tuple[BedGate, ...] = ()

    @property
    def any(self) -> bool:
        """Whether any bed may run a gate."""
        return self.default is not None or any(b.rule is not None for b in self.per_bed)

    def rule_for(self, bed: str) -> GateRule | None:
        """The rule a bed runs.

        Parameters
        ----------
        bed : str
            The bed's name (:func:`scorer.ward.beds.bed_name`), matched against each
            ``per_bed`` pattern in turn.

        Returns
        -------
        GateRule or None
            The first matching ``per_bed`` rule, else ``default``; None: no gate.
        """
        for b in self.per_bed:
            if fnmatch.fnmatchcase(bed, b.pattern):
                return b.rule
        return self.default

    def describe(self) -> str:
        """The plan in one line, for the ward's log.

        Returns
        -------
        str
            E.g. ``gate N2/N3 p>=0.80 x2; bed-3*: off``.
        """
        parts = [f"gate {self.default.describe()}" if self.default is not None else "no gate"]
        parts += [f"{b.pattern}: {b.rule.describe() if b.rule is not None else 'off'}" for b in self.per_bed]
        return "; ".join(parts)


NO_PLAN = GatePlan()


def parse_bed_gate(gate_bed: str) -> BedGate:
    """One bed's rule (a ``sleepstream ward --gate-bed`` value).

    Parameters
    ----------
    gate_bed : str
        ``PATTERN=RULES``: a shell pattern on bed names, then ``off`` (or ``none``), ``default``,
        a ``.toml`` file or inline ``key=value`` pairs.

    Returns
    -------
    BedGate
        The pattern and its parsed rule (None for ``off``).

    Raises
    ------
    GateRuleError
        Naming ``gate_bed`` (its pattern) and what is wrong with it.
    """
    pattern, sep, rules = gate_bed.partition("=")
    pattern, rules = pattern.strip(), rules.strip()
    if not sep or not pattern:
        raise GateRuleError(f"{parameter('gate_bed')}={gate_bed!r}: expected PATTERN=RULES, e.g. "
                            "'bed-3=stages=N3,epochs=3' or 'bed-4=off'")
    if rules.lower() in NO_GATE_WORDS:
        return BedGate(pattern, rules, None)
    try:
        rule = parse_rule(rules)
    except GateRuleError as exc:   # parse_rule names an inline rule "gate='...'": here it is the bed's
        inline = f"{parameter('gate')}="
        msg = str(exc.args[0])
        raise GateRuleError(f"{parameter('gate_bed')} {pattern}: {msg.removeprefix(inline)}") from None
    return BedGate(pattern, rules, rule)


def gate_plan(gate: str | None, gate_beds: list[str] | tuple[str, ...] = ()) -> GatePlan:
    """Every bed's rule, from the ward's options; each rule parsed here, once.

    Parameters
    ----------
    gate : str or None
        ``--gate``'s value: None when not given, ``""`` for the default rule.
    gate_beds : sequence of str
        The ``--gate-bed PATTERN=RULES`` values, in the order given.

    Returns
    -------
    GatePlan
        The default rule and the per-bed rules.

    Raises
    ------
    GateRuleError
        The first bad rule, in one line.
    """
    default = parse_rule(gate) if gate is not None else None
    return GatePlan(default, tuple(parse_bed_gate(t) for t in gate_beds))


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {v!r} in a rule file")


def rule_toml(rule: GateRule, header: str = "") -> str:
    """A rule as the TOML that :func:`scorer.gate.rules.parse_rule` reads back as the same rule.

    Parameters
    ----------
    rule : GateRule
        The rule: ``[gate]``, and every guard threshold in ``[guard]`` (a check that is
        off, None, is written ``false``, which :func:`~scorer.gate.rules.parse_rule`
        reads back as off).
    header : str
        Comment lines written first.

    Returns
    -------
    str
        The TOML text.
    """
    lines = [f"# {ln}" for ln in header.splitlines()]
    stages = ", ".join(_toml_value(s) for s in STAGES if s in rule.stages)
    lines += ["[gate]", f"stages = [{stages}]", f"min_probability = {_toml_value(float(rule.min_probability))}",
              f"epochs = {int(rule.epochs)}", f"max_open_s = {_toml_value(float(rule.max_open_s))}",
              f"guard = {_toml_value(bool(rule.guard))}", "", "[guard]"]
    for f in dataclasses.fields(rule.thresholds):
        v = getattr(rule.thresholds, f.name)
        lines.append(f"{f.name} = {_toml_value(False if v is None else v)}")   # TOML has no null: false = off
    return "\n".join(lines) + "\n"


def write_rule_file(rule: GateRule, path: Path, header: str = "") -> Path:
    """Write a bed's rule file (atomically) and check that it reads back as the same rule.

    Parameters
    ----------
    rule : GateRule
        The rule (see :func:`rule_toml`).
    path : Path
        The file, e.g. ``DIR/<bed>.gate.toml``.
    header : str
        Comment lines written first.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    GateRuleError
        When the file does not read back as ``rule``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(rule_toml(rule, header), encoding="utf-8")
    tmp.replace(path)
    back = parse_rule(str(path))
    if back != rule:   # a threshold TOML cannot say (None where the default is a number)
        raise GateRuleError(f"{path}: the rule does not read back as written ({back} != {rule})")
    return path
