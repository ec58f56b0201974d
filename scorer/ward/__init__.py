"""Many beds at once, beside the live loop: ``sleepstream ward``.

One supervisor (:class:`scorer.ward.supervisor.Ward`) watches LSL for EEG streams, names
each bed after its stream (:mod:`scorer.ward.beds`) and runs one worker process per bed
(:mod:`scorer.ward.worker`) that is exactly ``sleepstream live --source-id SID`` with a
machine-readable status channel (``--status-json``). Workers publish what ``live``
publishes (``<bed>-stage``/``<bed>-probabilities`` outlets, ``<bed>.tsv``); the
supervisor only reads their lines into :class:`scorer.ward.state.BedState` for the
screen (:mod:`scorer.ward.screen`, :mod:`scorer.ward.display`) or the log.
"""
