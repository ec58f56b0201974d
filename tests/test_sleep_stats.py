"""Sleep statistics against hypnograms computed by hand (epochs of 30 s = 0.5 min)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sleepnet.io.hypnograms import read_hypnogram
from sleepnet.report.sleep_stats import RunningSleepStats, SleepStats, format_minutes, sleep_statistics

W, N1, N2, N3, R, U = 0, 1, 2, 3, 4, -1


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def _assert_equal_stats(a: SleepStats, b: SleepStats) -> None:
    da, db = a.as_dict(), b.as_dict()
    assert da.keys() == db.keys()
    for k in da:
        assert _same(float(da[k]), float(db[k])), (k, da[k], db[k])


def test_yasa_docstring_hypnogram_gives_yasas_numbers_with_rem_latency_from_sleep_onset():
    # The example of yasa.sleep_statistics: its Lat_REM (7.0, from the record start) is
    # SOL (1.0) + our Lat_REM (6.0, from sleep onset).
    s = sleep_statistics([0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 3, 3, 4, 4, 4, 4, 0, 0])
    d = s.as_dict()
    assert (d["TIB"], d["SPT"], d["WASO"], d["TST"], d["SOL"]) == (10.0, 8.0, 0.0, 8.0, 1.0)
    assert (d["N1"], d["N2"], d["N3"], d["REM"], d["NREM"]) == (1.5, 2.0, 2.5, 2.0, 6.0)
    assert d["Lat_REM"] == 6.0 and d["SOL"] + d["Lat_REM"] == 7.0
    assert (d["%N1"], d["%N2"], d["%N3"], d["%REM"], d["%NREM"]) == (18.75, 25.0, 31.25, 25.0, 75.0)
    assert d["SE"] == 80.0 and d["SME"] == 100.0
    assert d["N_awakenings"] == 0


# idx:    0  1  2  3   4   5   6  7  8   9  10  11  12 13 14 15  16 17 18 19
NIGHT = [W, W, W, N1, N2, N2, W, W, N2, U, N3, N3, W, U, W, N2, R, R, W, W]


def test_hand_scored_night_with_wake_bouts_and_unscored_epochs():
    s = sleep_statistics(NIGHT)
    assert s.tib_min == 10.0                 # 20 epochs
    assert s.sol_min == 1.5                  # first sleep at epoch 3
    assert s.spt_min == 7.5                  # epochs 3..17
    assert s.waso_min == 2.0                 # W at 6, 7, 12, 14
    assert s.tst_min == 4.5                  # 1 N1 + 4 N2 + 2 N3 + 2 REM
    assert s.spt_min == s.tst_min + s.waso_min + 1.0   # + 2 unscored epochs inside SPT
    assert s.se_pct == pytest.approx(45.0)
    assert s.sme_pct == pytest.approx(60.0)
    assert s.latency_min == {"N1": 0.0, "N2": 0.5, "N3": 3.5, "REM": 6.5}
    assert s.minutes == {"W": 4.5, "N1": 0.5, "N2": 2.0, "N3": 1.0, "REM": 1.0, "UNS": 1.0}
    assert s.pct_tst["N2"] == pytest.approx(100 * 4 / 9)
    assert s.pct_tst["NREM"] == pytest.approx(100 * 7 / 9)
    # Runs of wake inside SPT: {6,7} and {12, ?, 14}; the final wake (18, 19) is after SPT.
    assert s.n_awakenings == 2
    assert (s.sleep_onset_epoch, s.last_sleep_epoch) == (3, 17)


def test_no_sleep_at_all_gives_zero_sleep_and_no_latencies():
    s = sleep_statistics([W, W, U, W])
    assert (s.tib_min, s.spt_min, s.tst_min, s.waso_min) == (2.0, 0.0, 0.0, 0.0)
    assert s.se_pct == 0.0
    assert math.isnan(s.sol_min) and math.isnan(s.sme_pct) and math.isnan(s.rem_latency_min)
    assert all(math.isnan(v) for v in s.pct_tst.values())
    assert s.n_awakenings == 0 and not s.has_sleep
    assert s.minutes["W"] == 1.5 and s.minutes["UNS"] == 0.5


def test_empty_and_all_unscored_hypnograms():
    e = sleep_statistics([])
    assert e.tib_min == 0.0 and math.isnan(e.se_pct) and e.tst_min == 0.0
    u = sleep_statistics([U, U, U])
    assert u.tib_min == 1.5 and u.minutes["UNS"] == 1.5 and u.tst_min == 0.0 and not u.has_sleep


def test_sleep_from_the_first_epoch_has_zero_onset_latency():
    s = sleep_statistics([N2, N2, N3, W, N2])
    assert s.sol_min == 0.0 and s.spt_min == 2.5 and s.waso_min == 0.5 and s.tst_min == 2.0
    assert s.n_awakenings == 1 and s.se_pct == 80.0 and s.sme_pct == 80.0
    assert math.isnan(s.rem_latency_min)


def test_night_ending_in_rem_keeps_the_last_epoch_in_the_sleep_period():
    s = sleep_statistics([W, N1, N2, N2, R, R])
    assert s.last_sleep_epoch == 5 and s.spt_min == 2.5 and s.waso_min == 0.0
    assert s.rem_latency_min == 1.5 and s.pct_tst["REM"] == pytest.approx(40.0)
    assert s.se_pct == pytest.approx(100 * 5 / 6) and s.sme_pct == 100.0


def test_wake_after_the_last_sleep_epoch_is_not_waso_until_sleep_resumes():
    assert sleep_statistics([N2, W, W]).waso_min == 0.0
    assert sleep_statistics([N2, W, W, N2]).waso_min == 1.0


def test_codes_outside_0_to_4_count_as_unscored():
    s = sleep_statistics([W, 7, N2, -2])
    assert s.minutes["UNS"] == 1.0 and s.tst_min == 0.5


@pytest.mark.parametrize("night", [
    NIGHT, [W, W, U, W], [], [U, U], [N2, N2, N3, W, N2], [W, N1, N2, N2, R, R],
    [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 3, 3, 4, 4, 4, 4, 0, 0],
])
def test_running_statistics_equal_batch_statistics_after_every_epoch(night):
    run = RunningSleepStats()
    _assert_equal_stats(run.stats(), sleep_statistics([]))
    for i, code in enumerate(night):
        run.push(code)
        _assert_equal_stats(run.stats(), sleep_statistics(night[:i + 1]))


def test_running_statistics_equal_batch_on_random_fragmented_hypnograms():
    rng = np.random.default_rng(7)
    for _ in range(20):
        night = rng.choice([-1, 0, 0, 1, 2, 2, 3, 4], size=int(rng.integers(1, 120))).tolist()
        run = RunningSleepStats()
        for i, code in enumerate(night):
            run.push(code)
            if i % 7 == 0 or i == len(night) - 1:
                _assert_equal_stats(run.stats(), sleep_statistics(night[:i + 1]))


def test_a_real_sleep_edf_night_has_consistent_statistics(shared_data):
    codes = read_hypnogram(shared_data / "hypnograms" / "sleep-edf-sc" / "SC4001E0.txt")
    s = sleep_statistics(codes)
    spt = codes[s.sleep_onset_epoch:s.last_sleep_epoch + 1]
    uns_in_spt = np.count_nonzero(spt < 0) * 0.5
    assert s.spt_min == pytest.approx(s.tst_min + s.waso_min + uns_in_spt)
    assert s.tib_min == len(codes) / 2
    # A healthy young adult: hours of sleep, REM some tens of minutes after onset.
    assert 300 < s.tst_min < 600 and 30 < s.rem_latency_min < 200
    run = RunningSleepStats()
    run.extend(codes)
    _assert_equal_stats(run.stats(), s)


def test_format_minutes():
    assert format_minutes(float("nan")) == "—"
    assert format_minutes(45.5) == "45.5 min"
    assert format_minutes(425.0) == "7 h 05 min"
