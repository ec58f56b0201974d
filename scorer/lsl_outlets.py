"""Stage outlets for other LSL apps (recorders, experiment control, neurofeedback).

Two irregular-rate streams, made when the sink is created:

* ``<name>-stage``: type ``Markers``, one string channel: W, N1, N2, N3, REM or UNS.
* ``<name>-probabilities``: type ``Probabilities``, six float32 channels: p_W, p_N1,
  p_N2, p_N3, p_REM (label-map order) and confidence; NaN when unscored.

Each sample is stamped at the epoch's end (its last sample) in the scorer's own LSL
clock, i.e. the source timestamp plus ``time_correction()``, so a consumer can line
stages up with the EEG. The source_ids are stable (``sleepstream-scorer:<name>-stage``
and ``...-probabilities``) so consumers recover across scorer restarts.

The descriptions follow the conventions LSL apps read (the XDF meta-data
specification, as LabRecorder, mne-lsl and vendor apps write and read them):

* ``channels/channel`` per channel with ``label``, ``unit`` and ``type`` (the stage
  channel: ``stage``, unit ``none``, type ``Markers``; the probability channels: unit
  ``probability``, type ``MISC``);
* ``acquisition`` with ``manufacturer`` (``sleepstream``), ``model`` (the model id)
  and ``software_version``;
* ``label_map`` with one ``label`` (``code``, ``stage``) per class, plus the same map
  as JSON in ``label_map_json``; ``unscored``, ``model_id``, ``epoch_s``,
  ``timestamp`` (what the stamps mean), ``source_stream`` (the EEG scored) and
  ``source_channel`` (its channel, or the derivation computed from its channels, e.g.
  ``F4-(TP9+TP10)/2``).
"""
from __future__ import annotations

import json
import logging
import time

import pylsl

from sleepnet.doc_sections import sections_of
from sleepnet.stages import EPOCH_S, STAGES, UNSCORED_NAME

from .records import ScoredEpoch
from .sinks import Sink

log = logging.getLogger(__name__)

DEFAULT_OUTLET_NAME = "sleepstream"
STAGE_SUFFIX = "-stage"
PROBABILITIES_SUFFIX = "-probabilities"
STAGE_TYPE = "Markers"
PROBABILITIES_TYPE = "Probabilities"
PROBABILITY_CHANNELS: tuple[str, ...] = tuple(f"p_{s}" for s in STAGES) + ("confidence",)


def outlet_source_id(name: str, suffix: str) -> str:
    """The stable source_id of an outlet of the scorer named ``name``.

    Parameters
    ----------
    name : str
        The outlet name prefix (``--outlet-name``).
    suffix : str
        The outlet's suffix (``-stage``, ``-probabilities``, ``-gate``).

    Returns
    -------
    str
        ``sleepstream-scorer:<name><suffix>``: the same across restarts, so consumers
        recover.
    """
    return f"sleepstream-scorer:{name}{suffix}"


def _software_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("sleepstream")
    except (ImportError, PackageNotFoundError):  # pragma: no cover - running from a bare checkout
        return "unknown"


def _describe(info: pylsl.StreamInfo, model_id: str, epoch_s: float, source_stream: str,
              channels: tuple[tuple[str, str, str], ...], source_channel: str = "") -> None:
    """Write the description (see the module text); ``channels``: (label, unit, type) each."""
    d = info.desc()
    chans = d.append_child("channels")
    for label, unit, kind in channels:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", kind)
    acq = d.append_child("acquisition")
    acq.append_child_value("manufacturer", "sleepstream")
    acq.append_child_value("model", model_id)
    acq.append_child_value("software_version", _software_version())
    lm = d.append_child("label_map")
    for i, s in enumerate(STAGES):
        item = lm.append_child("label")
        item.append_child_value("code", str(i))
        item.append_child_value("stage", s)
    d.append_child_value("label_map_json", json.dumps({str(i): s for i, s in enumerate(STAGES)}))
    d.append_child_value("unscored", UNSCORED_NAME)
    d.append_child_value("model_id", model_id)
    d.append_child_value("epoch_s", f"{epoch_s:g}")
    d.append_child_value("timestamp", "last sample of the epoch, scorer's LSL clock")
    d.append_child_value("source_stream", source_stream)
    d.append_child_value("source_channel", source_channel)
    d.append_child_value("manufacturer", "sleepstream")


class LslOutletSink(Sink):
    """Sink publishing each scored epoch on the two outlets.

    Only :meth:`publish` and :meth:`close` do anything: truth is not republished and
    stream health is not published on LSL (the :class:`~scorer.sinks.Sink` methods, which
    do nothing, stand).

    Parameters
    ----------
    name : str
        Outlet name prefix (``--outlet-name``).
    model_id : str
        Written into both descriptions.
    epoch_s : float
        The epoch length, s (``epoch_s`` in the descriptions).
    source_stream : str
        Name of the EEG stream being scored (for the description).
    linger_s : float
        On close, wait this long (s) when consumers are connected, so they can pull the
        last stages before the outlets disappear.
    source_channel : str
        The channel scored, or the derivation computed from the stream's channels.
    """

    def __init__(self, name: str = DEFAULT_OUTLET_NAME, model_id: str = "", epoch_s: float = EPOCH_S,
                 source_stream: str = "", linger_s: float = 0.5, source_channel: str = "") -> None:
        self.name = name
        self.linger_s = float(linger_s)
        sinfo = pylsl.StreamInfo(name + STAGE_SUFFIX, STAGE_TYPE, 1, pylsl.IRREGULAR_RATE, "string",
                                 outlet_source_id(name, STAGE_SUFFIX))
        _describe(sinfo, model_id, epoch_s, source_stream, (("stage", "none", STAGE_TYPE),), source_channel)
        pinfo = pylsl.StreamInfo(name + PROBABILITIES_SUFFIX, PROBABILITIES_TYPE, len(PROBABILITY_CHANNELS),
                                 pylsl.IRREGULAR_RATE, "float32", outlet_source_id(name, PROBABILITIES_SUFFIX))
        _describe(pinfo, model_id, epoch_s, source_stream,
                  tuple((label, "probability", "MISC") for label in PROBABILITY_CHANNELS), source_channel)
        self._stage: pylsl.StreamOutlet | None = pylsl.StreamOutlet(sinfo)
        self._probs: pylsl.StreamOutlet | None = pylsl.StreamOutlet(pinfo)
        log.info("publishing stages on LSL streams '%s%s' and '%s%s'", name, STAGE_SUFFIX, name,
                 PROBABILITIES_SUFFIX)

    @sections_of(Sink.publish, """Push the stage and the probabilities, stamped at the epoch's
        last sample (nothing after :meth:`close`).""")
    def publish(self, record: ScoredEpoch) -> None:
        if self._stage is None or self._probs is None:
            return
        self._stage.push_sample([record.stage], record.end_time)
        self._probs.push_sample([*record.probabilities, record.confidence], record.end_time)

    def close(self) -> None:
        """Close the outlets, first giving connected consumers ``linger_s`` to pull the
        last stages (LSL discards what a consumer has not pulled when an outlet closes)."""
        outlets = [o for o in (self._stage, self._probs) if o is not None]
        if self.linger_s > 0 and any(o.have_consumers() for o in outlets):
            time.sleep(self.linger_s)
        self._stage = None
        self._probs = None
