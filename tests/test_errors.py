"""Library errors name parameters; each command says them as the flags the user typed
(issue 22, item 5): :func:`sleepnet.errors.parameter` marks a parameter in a message,
:meth:`sleepnet.errors.SleepstreamError.naming` renames the marked words only, and
``sleepstream``'s one error line (:func:`sleepstream.cli.main`) uses each command's map
(:func:`sleepstream.cli.parameter_flags`). All pure: no stream, no process."""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from scorer.session import SessionOptionError
from sleepnet.errors import InputFileError, SleepstreamError, parameter
from sleepstream.cli import build_parser
from sleepstream.cli import main as cli_main


def flags_of(command: str, *args: str) -> dict[str, str]:
    """The parameter -> flag map ``sleepstream COMMAND`` says its errors with."""
    return build_parser().parse_args([command, *args])._flags


def test_a_marked_parameter_reads_as_its_name_and_a_command_renames_only_the_marked_words():
    e = InputFileError(f"{parameter('channel_index')}=5 is out of range: stream 'channel_index' has 4 "
                       f"channels (channel_index.txt); a channel_index word, {parameter('units')}=uV|mV|V, "
                       f"{parameter('loop')} needs {parameter('speed')}")
    library = ("channel_index=5 is out of range: stream 'channel_index' has 4 channels (channel_index.txt); "
               "a channel_index word, units=uV|mV|V, loop needs speed")
    assert str(e) == library and repr(e) == f"InputFileError({library!r})"
    assert e.parameters == ("channel_index", "units", "loop", "speed")
    names = {"channel_index": "--channel-index", "units": "--units", "loop": "--loop"}
    assert e.naming(names) == ("--channel-index 5 is out of range: stream 'channel_index' has 4 channels "
                               "(channel_index.txt); a channel_index word, --units uV|mV|V, --loop needs speed")
    assert SleepstreamError("no parameter here").naming(names) == "no parameter here"


def test_errors_keep_their_parameters_across_processes():
    """Archive nights fail in worker processes (local or on Dask): their errors are pickled."""
    e = SleepstreamError(f"{parameter('scheduler')}=tcp://x:1: cannot reach a Dask scheduler")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is SleepstreamError and back.naming({"scheduler": "--scheduler"}) == \
        "--scheduler tcp://x:1: cannot reach a Dask scheduler"
    opt = pickle.loads(pickle.dumps(SessionOptionError("epochs", "must be at least 1, got 0")))
    assert (opt.parameter, opt.problem, str(opt)) == ("epochs", "must be at least 1, got 0",
                                                      "epochs must be at least 1, got 0")


def test_each_command_maps_its_options_and_the_parameters_named_otherwise():
    live = flags_of("live")
    assert live["channel_index"] == "--channel-index" and live["timeout_s"] == "--timeout"   # FLAGS
    assert live["session_id"] == "--session-id"                                             # a dest
    assert flags_of("score", "x.edf")["scheduler"] == "--scheduler"
    assert flags_of("ward")["gate_bed"] == "--gate-bed"
    assert flags_of("replay", "x.edf")["loop"] == "--loop"


def _replay_error(**kw) -> SleepstreamError:
    from replay.player import Player, ReplaySource

    x = np.zeros((3000, 1), dtype=np.float32)
    with pytest.raises(SleepstreamError) as e:
        Player(ReplaySource.from_arrays(x, 100.0, ["Fpz-Cz"]), **kw)
    return e.value


def _raised(call, *args, **kw) -> SleepstreamError:
    with pytest.raises(SleepstreamError) as e:
        call(*args, **kw)
    return e.value


def test_library_errors_name_parameters_and_the_commands_say_their_flags():
    from scorer.gate.rules import parse_rule
    from sleepnet.train.datasets import parse_subjects

    cases = [  # (error, library text, command, what the command says)
        (_replay_error(speed=None, loop=True), "loop needs a finite speed: at 'max'", "replay",
         "--loop needs a finite --speed: at 'max'"),
        (_replay_error(speed=0.0), "speed must be a positive number or 'max', got 0.0", "replay",
         "--speed must be a positive number or 'max', got 0.0"),
        (_replay_error(chunk=0), "chunk must be at least 1 sample, got 0", "replay",
         "--chunk must be at least 1 sample, got 0"),
        (_raised(parse_rule, "stages=N5"), "gate='stages=N5': unknown stage(s) ['N5']", "live",
         "--gate 'stages=N5': unknown stage(s) ['N5']"),
        (_raised(parse_subjects, "a-b"), "subjects='a-b': expected numbers and ranges", "train",
         "--subjects 'a-b': expected numbers and ranges"),
    ]
    for error, library, command, said in cases:
        assert str(error).startswith(library), str(error)
        assert error.naming(flags_of(command, *(["x.edf"] if command == "replay" else []))).startswith(said)


def test_the_command_line_says_an_archive_error_with_the_flags_typed(tmp_path, capsys):
    for sub in ("a", "b", "o"):
        (tmp_path / sub).mkdir()
    for sub in ("a", "b"):
        (tmp_path / sub / "night.edf").write_bytes(b"")
    hyp = tmp_path / "truth.txt"
    hyp.write_text("W\n")
    base = ["score", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]
    assert cli_main([*base, "--hypnogram", str(hyp)]) == 2
    assert capsys.readouterr().err == (f"sleepstream score: error: --hypnogram {hyp}: names the hypnogram of one "
                                       "recording, but the inputs name 2; pair them by name or in an @list file "
                                       "instead\n")
    pytest.importorskip("distributed")
    assert cli_main([*base, "--scheduler", "tls://127.0.0.1:9"]) == 2      # refused before connecting
    err = capsys.readouterr().err
    assert err.startswith("sleepstream score: error: --scheduler tls://127.0.0.1:9: a tls:// scheduler needs "
                          "Dask's TLS settings") and err.count("\n") == 1


def test_calibration_says_its_data_flag(tmp_path, caplog):
    from sleepnet.sim.calibrate import data_dir_or_error
    from sleepnet.sim.calibrate import main as calibrate_main

    assert str(_raised(data_dir_or_error, tmp_path)).endswith("pass data=DIR pointing at the shared data")
    with caplog.at_level(logging.ERROR):
        assert calibrate_main(["--data", str(tmp_path), "--out", str(tmp_path / "p.json")]) == 2
    assert caplog.messages[-1] == (f"calibrate: real data folder {tmp_path} is absent (needs sleep-edf-features/ "
                                   "and hypnograms/); pass --data DIR pointing at the shared data")
    assert not (tmp_path / "p.json").exists()
