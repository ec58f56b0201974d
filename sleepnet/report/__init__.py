"""sleepnet.report: the night's report, its sleep statistics, figure and explainability view.

* ``explain``: classical EEG features per predicted stage (Cohen's d);
* ``figures``: the hypnogram figure (PNG);
* ``night_report``: ``write_report``: statistics, exports, agreement with a truth hypnogram;
* ``sleep_stats``: TST, SE, WASO, latencies and the rest, with their definitions.
"""
