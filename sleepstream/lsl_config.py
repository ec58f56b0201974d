"""Configure liblsl before any other LSL call: the user's LSL configuration when there
is one, this machine only otherwise; always liblsl's default session unless told.

Every LSL app (vendor amplifier apps, OpenBCI, BrainFlow, mne-lsl, LabRecorder) runs in
liblsl's default session, and a resolver sees only streams of its own session, so
sleepstream never sets a SessionID of its own: ``--session-id ID`` is the only way to
join another one.

Where liblsl looks for a configuration file, in its order: the file named by the
environment variable ``LSLAPICFG``, ``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``,
``/etc/lsl_api/lsl_api.cfg``. When one exists it is the user's and is used as it is
(sleepstream then gives liblsl no configuration of its own; with ``--session-id`` it
gives liblsl that file's text with only ``SessionID`` replaced). When none exists,
sleepstream's default keeps LSL on this machine (``ResolveScope = machine``,
``KnownPeers = {127.0.0.1}``, IPv6 off, ``PortRange`` widened to
:data:`MACHINE_PORT_RANGE` so that a ward's many outlets are all found) and silences
liblsl's own log, which writes
straight to file descriptor 2 and would garble the live display; ``--network`` keeps
liblsl's network defaults instead (only the log stays silenced).
"""
from __future__ import annotations

import argparse
import configparser
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sleepnet.doc_sections import filled

log = logging.getLogger(__name__)

#: Docstring fragments (:func:`sleepnet.doc_sections.filled`): the parameters that say where
#: liblsl looks for its configuration file, and the two LSL options of every command.
_fill_doc = filled(
    search_places="""
        env : dict of str to str, optional
            The environment (default ``os.environ``).
        cwd : Path, optional
            The working folder (default the process's).
        home : Path, optional
            The home folder (default the user's).""",
    lsl_options="""
        network : bool
            ``--network``: liblsl's network defaults when there is no user configuration.
        session_id : str, optional
            ``--session-id``: the LSL session to join (default: the user's configuration's,
            else liblsl's default session).""",
)

CONFIG_ENV = "LSLAPICFG"
CONFIG_NAME = "lsl_api.cfg"
DEFAULT_SESSION = "default"   # liblsl's own default SessionID
QUIET_LOG = "[log]\nlevel = -3\n"
#: liblsl's ``[ports] PortRange`` in sleepstream's this-machine configuration. liblsl's own
#: is 32 ports from 16572, shared by every LSL process on the machine; an outlet made once
#: they are taken gets a random port, and a resolver that asks ``KnownPeers = 127.0.0.1``
#: (as this configuration does) asks only the ports in its range, so it never finds that
#: outlet. A ward's beds are two or three outlets each (stages, probabilities, the gate's)
#: beside their EEG streams: with 32 ports, beds went missing (tests/test_lsl_config.py).
MACHINE_PORT_RANGE = 512
MACHINE_ONLY = (QUIET_LOG
                + f"[ports]\nIPv6 = disable\nPortRange = {MACHINE_PORT_RANGE}\n"
                + "[multicast]\nResolveScope = machine\n"
                + "[lab]\nKnownPeers = {127.0.0.1}\n")

NETWORK_HELP = ("find and publish LSL streams across the network with liblsl's own defaults. Without it "
                "(and without an lsl_api.cfg of yours) sleepstream stays on this machine: ResolveScope=machine, "
                f"KnownPeers=127.0.0.1, IPv6 off, PortRange={MACHINE_PORT_RANGE}. An lsl_api.cfg of yours (named by LSLAPICFG, or in ./, "
                "~/lsl_api/ or /etc/lsl_api/) is used as it is, and then this option changes nothing")
SESSION_HELP = ("join LSL session ID instead of liblsl's default session, which every LSL app uses unless "
                "configured otherwise (replaces only the SessionID of your lsl_api.cfg, if you have one). "
                "Streams are visible only within their session")


@_fill_doc
def config_search_paths(env: dict[str, str] | None = None, cwd: Path | None = None,
                        home: Path | None = None) -> list[Path]:
    """Where liblsl looks for its configuration file, first hit wins.

    Parameters
    ----------
    {search_places}

    Returns
    -------
    list of Path
        ``$LSLAPICFG`` (when set and not empty), ``./lsl_api.cfg``,
        ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``, in that order.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    home = Path.home() if home is None else home
    paths = [Path(env[CONFIG_ENV])] if env.get(CONFIG_ENV) else []
    return paths + [cwd / CONFIG_NAME, home / "lsl_api" / CONFIG_NAME, Path("/etc/lsl_api") / CONFIG_NAME]


@_fill_doc
def find_user_config(env: dict[str, str] | None = None, cwd: Path | None = None,
                     home: Path | None = None) -> Path | None:
    """The LSL configuration file liblsl would load, or None when there is none.

    Parameters
    ----------
    {search_places}

    Returns
    -------
    Path or None
        The first path of :func:`config_search_paths` that can be opened for reading (a
        ``LSLAPICFG`` naming an unreadable file is skipped, as liblsl skips it); None
        when none can.
    """
    for p in config_search_paths(env, cwd, home):
        try:
            with open(p, "rb"):
                return p
        except OSError:
            continue
    return None


def session_of(config_text: str) -> str:
    """The SessionID a configuration text sets.

    Parameters
    ----------
    config_text : str
        The text of an ``lsl_api.cfg``.

    Returns
    -------
    str
        Its ``[lab] SessionID``; liblsl's ``default`` when it sets none, sets an empty
        one, or cannot be parsed.
    """
    cp = configparser.ConfigParser(strict=False, interpolation=None, inline_comment_prefixes=(";", "#"))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(config_text)
    except configparser.Error:
        return DEFAULT_SESSION
    return cp.get("lab", "SessionID", fallback=DEFAULT_SESSION).strip() or DEFAULT_SESSION


def with_session(config_text: str, session_id: str) -> str:
    """A configuration text with its ``[lab] SessionID`` set.

    Parameters
    ----------
    config_text : str
        The text of an ``lsl_api.cfg``.
    session_id : str
        The SessionID to set.

    Returns
    -------
    str
        ``config_text`` with its ``[lab] SessionID`` replaced, or added (with a ``[lab]``
        section when it has none); every other line kept as it is.
    """
    out: list[str] = []
    section = ""
    placed = False
    for line in config_text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            if section == "lab" and not placed:
                out.append(f"SessionID = {session_id}")
                placed = True
            section = s[1:-1].strip().lower()
        elif section == "lab" and s.split("=", 1)[0].strip().lower() == "sessionid":
            if not placed:
                out.append(f"SessionID = {session_id}")
                placed = True
            continue
        out.append(line)
    if not placed:
        if section != "lab":
            out.append("[lab]")
        out.append(f"SessionID = {session_id}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class LslSetup:
    """How liblsl was configured.

    Parameters
    ----------
    user_config : Path or None
        The user's configuration file in use (None: sleepstream's own).
    network : bool
        liblsl's network defaults (True) or this machine only (False); with a user
        configuration, whatever it says.
    session_id : str
        The LSL session joined.
    content : str or None
        The text given to liblsl (None: liblsl loads ``user_config`` itself).
    """

    user_config: Path | None
    network: bool
    session_id: str
    content: str | None

    def describe(self) -> str:
        """Where streams are looked for, in words.

        Returns
        -------
        str
            E.g. ``this machine only, liblsl's default session``.
        """
        session = ("liblsl's default session" if self.session_id == DEFAULT_SESSION
                   else f"LSL session {self.session_id!r}")
        if self.user_config is not None:
            return f"your LSL configuration {self.user_config}, {session}"
        where = "the network (liblsl's defaults)" if self.network else "this machine only"
        return f"{where}, {session}"

    def search_hint(self) -> str:
        """How to look further when a stream was not found: ``sleepstream live`` adds it to the
        error when no stream matched (:class:`streamer.errors.StreamNotFoundError`).

        Returns
        -------
        str
            ``searched <describe()>; to look further: ...``, with the options that would
            widen the search (``--network``, ``--session-id``, an ``lsl_api.cfg``).
        """
        tips = []
        if self.user_config is None and not self.network:
            tips.append("--network to look on other machines")
        if self.session_id == DEFAULT_SESSION:
            tips.append("--session-id ID if the stream is in another LSL session")
        else:
            tips.append("no --session-id (or another one) if the stream is in liblsl's default session")
        if self.user_config is None:
            tips.append(f"an lsl_api.cfg (e.g. {CONFIG_ENV}=FILE) for KnownPeers or other LSL settings")
        else:
            tips.append(f"check {self.user_config} (KnownPeers, ResolveScope, SessionID)")
        return f"searched {self.describe()}; to look further: " + "; ".join(tips)


@_fill_doc
def plan_lsl(network: bool = False, session_id: str | None = None,
             user_config: Path | None = None) -> LslSetup:
    """Decide the configuration (pure: reads only ``user_config``).

    Parameters
    ----------
    {lsl_options}
    user_config : Path, optional
        The user's configuration file (see :func:`find_user_config`).

    Returns
    -------
    LslSetup
        The decision: the user's file as it is (or its text with only the SessionID
        replaced), else sleepstream's own text (this machine only, or liblsl's network
        defaults with ``network``; liblsl's log silenced either way).
    """
    session_id = session_id.strip() if session_id else None
    if user_config is not None:
        text = user_config.read_text(errors="replace")
        if session_id is None:
            return LslSetup(user_config, network, session_of(text), None)
        return LslSetup(user_config, network, session_id, with_session(text, session_id))
    base = QUIET_LOG if network else MACHINE_ONLY
    content = base if session_id is None else with_session(base, session_id)
    return LslSetup(None, network, session_id or DEFAULT_SESSION, content)


@_fill_doc
def configure_lsl(network: bool = False, session_id: str | None = None) -> LslSetup:
    """Configure liblsl (see the module text); must run before the first stream,
    outlet or inlet of the process.

    Parameters
    ----------
    {lsl_options}

    Returns
    -------
    LslSetup
        What was decided, e.g. for an error message that says where else to look.
    """
    import pylsl

    setup = plan_lsl(network, session_id, find_user_config())
    if setup.content is not None:
        pylsl.set_config_content(setup.content)
    if setup.user_config is not None and network:
        log.info("--network changes nothing: your LSL configuration %s decides", setup.user_config)
    log.info("LSL: %s", setup.describe())
    return setup


def add_lsl_arguments(p: argparse.ArgumentParser) -> None:
    """``--network`` and ``--session-id``, for every command that makes LSL calls.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The command's parser; the options go in a group of their own.
    """
    g = p.add_argument_group("LSL (default: liblsl's default session; your lsl_api.cfg if you have one, "
                             "else this machine only)")
    g.add_argument("--network", action="store_true", help=NETWORK_HELP)
    g.add_argument("--session-id", metavar="ID", help=SESSION_HELP)


def write_machine_config(path: Path, session_id: str | None = None) -> Path:
    """Write sleepstream's this-machine-only configuration to ``path``.

    E.g. for tests and benchmarks that point ``LSLAPICFG`` at a session of their own.

    Parameters
    ----------
    path : Path
        The file to write (replaced when it exists).
    session_id : str, optional
        A ``[lab] SessionID`` to set; None sets none (liblsl's default session).

    Returns
    -------
    Path
        ``path``.
    """
    text = MACHINE_ONLY if session_id is None else with_session(MACHINE_ONLY, session_id)
    path.write_text(text)
    return path
