"""LSL configuration: the user's lsl_api.cfg as it is, this machine only without one,
liblsl's default session unless --session-id says otherwise, and the options' help."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sleepstream.lsl_config import CONFIG_ENV, DEFAULT_SESSION, find_user_config, plan_lsl, session_of, with_session

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
