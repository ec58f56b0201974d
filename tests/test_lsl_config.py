"""LSL configuration: the user's lsl_api.cfg as it is, this machine only without one,
liblsl's default session unless --session-id says otherwise, and the options' help."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sleepstream.lsl_config import (
    CONFIG_ENV,
    DEFAULT_SESSION,
    MACHINE_PORT_RANGE,
    find_user_config,
    plan_lsl,
    session_of,
    with_session,
    write_machine_config,
)

REPO = Path(__file__).resolve().parent.parent
USER_CFG = "[ports]\nBasePort = 17000\n[lab]\nKnownPeers = {10.0.0.7}\nSessionID = lab-7\n[tuning]\nSendSocketBufferSize = 0\n"


def test_without_a_user_config_the_default_is_this_machine_in_the_default_session():
    setup = plan_lsl()
    assert setup.user_config is None and setup.session_id == DEFAULT_SESSION
    assert "ResolveScope = machine" in setup.content and "KnownPeers = {127.0.0.1}" in setup.content
    assert "IPv6 = disable" in setup.content and "level = -3" in setup.content
    assert "SessionID" not in setup.content


def test_network_keeps_liblsl_network_defaults_and_session_id_adds_only_a_session():
    net = plan_lsl(network=True)
    assert "ResolveScope" not in net.content and "KnownPeers" not in net.content and "SessionID" not in net.content
    s = plan_lsl(session_id="night-lab")
    assert s.session_id == "night-lab" and session_of(s.content) == "night-lab"
    assert "ResolveScope = machine" in s.content


def test_a_user_config_is_used_as_it_is_and_session_id_replaces_only_its_session(tmp_path):
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(USER_CFG)
    setup = plan_lsl(network=False, user_config=cfg)
    assert setup.content is None and setup.user_config == cfg and setup.session_id == "lab-7"
    joined = plan_lsl(session_id="other", user_config=cfg)
    assert session_of(joined.content) == "other" and joined.content.count("SessionID") == 1
    assert joined.content.replace("SessionID = other", "SessionID = lab-7") == USER_CFG


def test_session_is_added_where_the_text_has_none():
    assert session_of("[ports]\nIPv6 = disable\n") == DEFAULT_SESSION
    text = with_session("[lab]\nKnownPeers = {127.0.0.1}\n[log]\nlevel = -3\n", "s1")
    assert session_of(text) == "s1" and text.index("SessionID") < text.index("[log]")
    assert session_of(with_session("[log]\nlevel = -3\n", "s2")) == "s2"


def test_user_config_is_found_where_liblsl_looks_in_its_order(tmp_path):
    cwd, home, env_cfg = tmp_path / "cwd", tmp_path / "home", tmp_path / "named.cfg"
    (home / "lsl_api").mkdir(parents=True)
    cwd.mkdir()
    if Path("/etc/lsl_api/lsl_api.cfg").exists():
        pytest.skip("/etc/lsl_api/lsl_api.cfg exists on this machine")
    assert find_user_config({}, cwd, home) is None
    (home / "lsl_api" / "lsl_api.cfg").write_text(USER_CFG)
    assert find_user_config({}, cwd, home) == home / "lsl_api" / "lsl_api.cfg"
    (cwd / "lsl_api.cfg").write_text(USER_CFG)
    assert find_user_config({}, cwd, home) == cwd / "lsl_api.cfg"
    assert find_user_config({CONFIG_ENV: str(tmp_path / "missing.cfg")}, cwd, home) == cwd / "lsl_api.cfg"
    env_cfg.write_text(USER_CFG)
    assert find_user_config({CONFIG_ENV: str(env_cfg)}, cwd, home) == env_cfg


def test_not_found_hint_says_where_it_searched_and_how_to_look_further(tmp_path):
    hint = plan_lsl().search_hint()
    assert "this machine only" in hint and "default session" in hint
    assert "--network" in hint and "--session-id" in hint and "LSLAPICFG" in hint
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(USER_CFG)
    user = plan_lsl(user_config=cfg).search_hint()
    assert str(cfg) in user and "'lab-7'" in user and "--network" not in user


@pytest.mark.lsl
@pytest.mark.parametrize("command", ["live", "replay", "demo"])
def test_every_lsl_command_documents_network_and_session_id(command):
    r = subprocess.run([sys.executable, "-m", "sleepstream.cli", command, "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "--network" in text and "ResolveScope=machine" in text and "lsl_api.cfg" in text
    assert "--session-id ID" in text and "default session" in text


# A process of a ward's worker: outlets (plain pylsl; LSLAPICFG names the configuration).
_SERVE = """
import sys, pylsl
outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(f"{sys.argv[1]}-{k}", "EEG", 1, 100.0, "float32", f"{sys.argv[1]}-{k}"))
           for k in range(int(sys.argv[2]))]
print("ready", flush=True)
sys.stdin.read()        # until the test closes our stdin
"""
# The ward's resolver: every stream of the session it sees in a few seconds, by name.
_FIND = """
import pylsl
print("\\n".join(sorted(s.name() for s in pylsl.resolve_streams(wait_time=4.0))))
"""


@pytest.mark.lsl
@pytest.mark.slow
def test_the_machine_only_default_finds_the_outlets_of_many_processes(tmp_path, liblsl_default_ports):
    """14 processes of 3 outlets each (a ward of 14 beds with --gate): with liblsl's 32 ports,
    outlets made once the ports are taken get random ports that a KnownPeers resolver never
    asks, and several processes' streams were not found; the machine-only default widens the
    range so every one is."""
    assert 3 * 14 > 32 and MACHINE_PORT_RANGE >= 3 * 14
    session = f"many-outlets-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, CONFIG_ENV: str(write_machine_config(tmp_path / "lsl_api.cfg", session))}
    names = [f"bed{b}-{uuid.uuid4().hex[:6]}" for b in range(14)]
    servers = [subprocess.Popen([sys.executable, "-c", _SERVE, name, "3"], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE) for name in names]
    try:
        for s in servers:
            assert s.stdout.readline().strip() == "ready"
        seen = set(subprocess.run([sys.executable, "-c", _FIND], env=env, text=True, capture_output=True,
                                  check=True, timeout=60).stdout.split())
        missing = [f"{n}-{k}" for n in names for k in range(3) if f"{n}-{k}" not in seen]
        assert missing == [], f"{len(missing)} of 42 outlets not found: {missing}"
    finally:
        for s in servers:
            s.stdin.close()
        for s in servers:
            s.wait(timeout=30)

