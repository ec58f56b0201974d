"""Stage-gated stimulation windows with an arousal guard (``sleepstream live --gate``).

rules: what opens and closes a window (TOML or inline). window: the pure state machine.
guard: the causal arousal detector. outlet: the ``<name>-gate`` LSL Markers stream
(with the lease: an open window is renewed while the loop runs). sink: all of it as a
sink of the live loop, with a callback API. listener: the stimulus program's side,
:class:`~scorer.gate.listener.GateListener` (``sleepstream.GateListener``).
"""
from .guard import ArousalGuard, GuardThresholds, GuardVerdict
from .rules import DEFAULT_RULE, GateRule, GateRuleError, parse_rule
from .window import CLOSE, OPEN, GateEvent, GateWindow

__all__ = ["ArousalGuard", "GuardThresholds", "GuardVerdict", "DEFAULT_RULE", "GateRule", "GateRuleError",
           "parse_rule", "CLOSE", "OPEN", "GateEvent", "GateWindow"]
