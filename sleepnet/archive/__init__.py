"""Score an archive of nights: many recordings at once, on local worker processes or a
Dask cluster, each night scored exactly as ``sleepstream score`` scores it alone, into one
cohort table.

* :mod:`.discover`: recordings from paths, folders, globs and ``@`` lists, paired with
  their hypnograms (the pairing rule).
* :mod:`.night`: the job of one night (read, score with
  :func:`sleepnet.batch.score_recording`, write the per-night files, return its row), the
  model's identity (id and weights hash) and resuming.
* :mod:`.runners`: local processes (:class:`~.runners.LocalRunner`) or a Dask cluster
  (:class:`~.runners.DaskRunner`).
* :mod:`.cohort`: ``cohort.csv`` / ``cohort.parquet`` and the pooled agreement.

Example
-------
>>> from sleepnet.archive import find_nights, model_identity, plan_jobs, LocalRunner
>>> nights = find_nights(["recordings/"])
>>> jobs, reused = plan_jobs(nights, "out", "EEG Fpz-Cz", model_identity())
>>> with LocalRunner(2) as runner:
...     rows = reused + list(runner.run(jobs))
"""
from .cohort import COLUMNS, pooled_agreement, read_cohort, write_cohort, write_pooled
from .discover import NightInput, find_nights, is_many, pair_hypnogram
from .night import (
                    ModelIdentity,
                    NightJob,
                    NightRow,
                    finished_row,
                    model_identity,
                    plan_jobs,
                    score_night,
                    weights_sha256,
)
from .runners import DaskRunner, LocalRunner

__all__ = ["COLUMNS", "pooled_agreement", "read_cohort", "write_cohort", "write_pooled", "NightInput",
           "find_nights", "is_many", "pair_hypnogram", "ModelIdentity", "NightJob", "NightRow", "finished_row",
           "model_identity", "plan_jobs", "score_night", "weights_sha256", "DaskRunner", "LocalRunner"]
