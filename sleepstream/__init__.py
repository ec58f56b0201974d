"""sleepstream: real-time sleep staging of single-channel Fpz-Cz EEG.

The command line (``sleepstream --help``) runs over sleepnet, streamer, scorer and replay.
The Python API (:mod:`sleepstream.api`) stages an array, an ``mne.io.Raw`` or a file::

    import sleepstream
    result = sleepstream.stage(raw, ch_name="EEG Fpz-Cz")
    result.stages, result.probabilities, result.sleep_statistics(), result.to_csv("stages.csv")

A stimulus program follows a scorer's stimulation windows (``sleepstream live --gate``)
with :class:`GateListener` (``scorer.gate.listener``), which honours the gate's lease::

    with sleepstream.GateListener("sleepstream-gate") as gate:
        if gate.wait_open(timeout=1.0): ...

The API is imported on first use, so ``import sleepstream`` (and the command line's
``--help``) stays light: torch is loaded only when something is scored.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["GateListener", "SleepstreamError", "StagingModel", "StagingResult", "__version__", "load_model", "stage"]

_API = {"StagingModel", "StagingResult", "load_model", "stage"}


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "GateListener":
        from scorer.gate.listener import GateListener

        return GateListener
    if name == "SleepstreamError":
        from sleepnet.errors import SleepstreamError

        return SleepstreamError
    raise AttributeError(f"module 'sleepstream' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
