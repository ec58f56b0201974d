"""The hypnogram file: header, one fsync'ed row per epoch, appends across sessions,
never truncates, and refuses what it must not write."""
from __future__ import annotations

import math
import os

import pytest

from scorer.hypnogram_file import HEADER, HypnogramFile, HypnogramFileError, check_writable, inspect_file, read_rows
from scorer.records import ScoredEpoch

NAN5 = (float("nan"),) * 5


def rec(epoch: int, stage: str = "N2", flags: tuple[str, ...] = ()) -> ScoredEpoch:
    if stage == "UNS":
        return ScoredEpoch(epoch, 100.0 + 30 * epoch, 129.99 + 30 * epoch, "UNS", NAN5, float("nan"), flags, 3.25)
    probs = (0.05, 0.1, 0.7, 0.1, 0.05)
    return ScoredEpoch(epoch, 100.0 + 30 * epoch, 129.99 + 30 * epoch, stage, probs, 0.7, flags, 3.25)


def test_new_file_gets_header_session_line_and_one_row_per_epoch_on_disk_at_once(tmp_path):
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path, "eeg-stream", "model-x")
    for i in range(3):
        hf.publish(rec(i, flags=("warmup",) if i < 2 else ()))
        # readable by anyone else as soon as publish returns (written, flushed, fsync'ed)
        assert len(read_rows(path)) == i + 1
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    assert HEADER.split("\t") == ["epoch", "start_time", "end_time", "stage", "p_W", "p_N1", "p_N2", "p_N3",
                                  "p_REM", "confidence", "flags", "latency_ms"]
    assert lines[1].startswith("# session 1 started ") and "stream=eeg-stream" in lines[1] and "model=model-x" in lines[1]
    rows = read_rows(path)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[0]["flags"] == ("warmup",) and rows[2]["flags"] == ()
    assert rows[1]["p_N2"] == pytest.approx(0.7) and rows[1]["latency_ms"] == pytest.approx(3.2, abs=0.06)
    assert rows[2]["start_time"] == pytest.approx(160.0) and rows[2]["end_time"] == pytest.approx(189.99)
    hf.close()


def test_unscored_epoch_row_has_nan_probabilities_and_its_flags(tmp_path):
    path = tmp_path / "n.tsv"
    hf = HypnogramFile(path)
    hf.publish(rec(0, "UNS", ("gap",)))
    hf.close()
    (row,) = read_rows(path)
    assert row["stage"] == "UNS" and row["flags"] == ("gap",)
    assert all(math.isnan(row[k]) for k in ("p_W", "p_N1", "p_N2", "p_N3", "p_REM", "confidence"))


def test_restart_appends_a_session_marker_and_continues_epoch_numbering(tmp_path):
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path, "s", "m")
    for i in range(4):
        hf.publish(rec(i))
    hf.close()
    before = path.read_bytes()
    hf2 = HypnogramFile(path, "s", "m")
    assert hf2.session == 2 and hf2.first_epoch == 4
    hf2.publish(rec(0))  # the new session's first epoch
    hf2.publish(rec(1))
    hf2.close()
    after = path.read_bytes()
    assert after.startswith(before), "an existing hypnogram must never be rewritten or truncated"
    text = after.decode()
    assert text.count(HEADER) == 1
    assert "# session 2 started " in text
    assert [r["epoch"] for r in read_rows(path)] == [0, 1, 2, 3, 4, 5]


def test_torn_last_line_is_kept_and_new_rows_start_on_their_own_line(tmp_path):
    path = tmp_path / "night.tsv"
    hf = HypnogramFile(path)
    hf.publish(rec(0))
    hf.close()
    with open(path, "a") as fh:
        fh.write("1\t130.0\t159.9")  # a crash in the middle of a write
    state = inspect_file(path)
    assert state.torn and state.last_epoch == 0
    hf = HypnogramFile(path)
    hf.publish(rec(0))
    hf.close()
    assert [r["epoch"] for r in read_rows(path)] == [0, 1]
    assert path.read_text().endswith("\n")


def test_unwritable_or_foreign_out_files_are_refused_with_one_line_and_left_untouched(tmp_path):
    with pytest.raises(HypnogramFileError, match="does not exist") as e:
        check_writable(tmp_path / "no" / "such" / "night.tsv")
    assert "\n" not in str(e.value)
    with pytest.raises(HypnogramFileError, match="not a regular file"):
        HypnogramFile(tmp_path)
    foreign = tmp_path / "notes.tsv"
    foreign.write_text("my precious notes\n")
    with pytest.raises(HypnogramFileError, match="not a sleepstream hypnogram"):
        HypnogramFile(foreign)
    assert foreign.read_text() == "my precious notes\n"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(HypnogramFileError, match="not writable"):
                check_writable(ro / "night.tsv")
        finally:
            ro.chmod(0o700)


def test_a_second_close_is_a_no_op_it_neither_writes_nor_counts_nor_logs_again(tmp_path, caplog):
    """close() after close(): rows kept for a disk that never came back are lost once
    (counted and said once), and nothing is written afterwards, not even when the disk
    comes back between the two calls."""
    folder = tmp_path / "night"
    folder.mkdir()
    path = folder / "night.tsv"
    hf = HypnogramFile(path, "eeg", "m")
    hf.publish(rec(0))
    path.unlink()
    folder.rmdir()                                      # the folder is gone: rows wait in memory
    hf.publish(rec(1))
    hf.publish(rec(2))
    assert not hf.recording and hf.rows_pending == 2
    with caplog.at_level("ERROR", logger="scorer.hypnogram_file"):
        hf.close()
        assert hf.rows_lost == 2 and hf.rows_pending == 0
        folder.mkdir()                                  # the disk is back, too late
        hf.close()
        hf.status(None)                                 # and no retry after close either
    assert hf.rows_lost == 2 and not path.exists()
    assert sum("they are lost" in r.getMessage() for r in caplog.records) == 1
