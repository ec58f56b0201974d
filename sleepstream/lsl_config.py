"""Configure liblsl before any other LSL call: this machine only by default.

Machine scope keeps streams off the LAN (ResolveScope=machine, KnownPeers=127.0.0.1,
IPv6 off) and silences liblsl's own log, which writes straight to fd 2 and would garble
the Rich display. Streams are only visible to resolvers with the same SessionID
(``SLEEPSTREAM_LSL_SESSION``, default ``sleepstream``); tests use one per run.
"""
from __future__ import annotations

import os

SESSION_ENV = "SLEEPSTREAM_LSL_SESSION"
DEFAULT_SESSION = "sleepstream"


def lsl_config_text(network: bool = False, session_id: str | None = None) -> str:
    session = session_id or os.environ.get(SESSION_ENV) or DEFAULT_SESSION
    if network:
        return f"[log]\nlevel = -3\n[lab]\nSessionID = {session}\n"
    return (
        "[log]\nlevel = -3\n"
        "[ports]\nIPv6 = disable\n"
        "[multicast]\nResolveScope = machine\n"
        "[lab]\nKnownPeers = {127.0.0.1}\n"
        f"SessionID = {session}\n"
    )


def configure_lsl(network: bool = False, session_id: str | None = None) -> None:
    """Apply the configuration; must run before the first stream, outlet or inlet."""
    import pylsl

    pylsl.set_config_content(lsl_config_text(network, session_id))
