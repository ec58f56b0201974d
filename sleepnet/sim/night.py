"""Simulated single-channel Fpz-Cz sleep EEG with its hypnogram.

A night is built in four steps:

1. **Stages.** A stage sequence from :mod:`sleepnet.sim.hypnogram_model` (a cycle-aware
   semi-Markov model fitted to real Sleep-EDF hypnograms), with stage changes moved off
   the 30-s grid (the label of an epoch is the stage covering most of it).
2. **Control traces** on a 0.25-s grid: stage weights cross-faded over a few seconds, a
   slowly wandering (Ornstein-Uhlenbeck, tau ~40 s) log-gain per component, arousals
   (3-15 s of alpha, beta and muscle inside sleep, not long enough to change the label),
   and the fall of slow-wave amplitude across the night.
3. **Signal** = sum of components, each a unit process times its gain trace:

   * aperiodic background: 1/f^chi processes (chi = 1.5 and 2.5 above a 1-Hz knee, chi = 3
     above a 4-Hz knee) whose mix sets the stage's spectral level and slope, and a
     sub-0.5 Hz drift;
   * narrow-band rhythms (Gaussian spectral peaks): slow waves (0.5-2 Hz, centre ~0.9 Hz;
     a Gaussian narrow-band process has Rayleigh-distributed amplitude, so N3 gets
     > 75 µV peak-to-peak waves over a calibrated share of its time), theta (4-8 Hz),
     alpha at the subject's alpha frequency, beta (15-30 Hz), muscle (EMG, > 20 Hz),
     slow rolling eye movements (0.2-0.6 Hz);
   * events with their own waveforms and per-stage rates: spindles (11-16 Hz, 0.5-2 s,
     Hann-shaped), K-complexes (sharp negative then slower positive wave, ~1 s, often
     followed by a spindle), vertex sharp waves (< 0.5 s), blinks (monophasic, 0.2-0.4 s,
     large at Fpz), rapid eye movements (sharp rise, ~0.5 s decay, in bursts) preceded by
     sawtooth-wave trains (2-5 Hz triangular waves), movement artefacts, electrode pops;
   * the amplifier's white noise floor and, above 100 Hz sampling, 50 Hz mains.

4. **Spectral envelope** (:mod:`sleepnet.sim.envelope`): per epoch, target band
   PSDs (delta, theta, alpha, beta, gamma) and variance are drawn from a per-stage model
   of real nights (Gaussian mixture, trend across the night, between-night offsets,
   epoch-to-epoch persistence) and imposed by rescaling six frequency bands with gains
   cross-faded at epoch boundaries. The phenomena keep their waveforms; the envelope
   makes their mix vary from epoch to epoch as real nights do.

Per-stage gains (µV) and variabilities are calibrated so that the nine Fpz-Cz base
features (:func:`sleepnet.features.base_features`) of simulated epochs match real
Sleep-EDF nights, and the envelope model is fitted to the same nights; both live in
``simulation_params.json`` beside this module, written by ``python -m sleepnet.sim.calibrate``.
Subjects differ in alpha and spindle frequency, the mix of slow waves, eye movements and
muscle, noise floor and electrode quality (:func:`random_subject`); with the envelope on,
each night's overall level and spectral balance come from the envelope's between-night
offset (sd of log variance 0.31, i.e. amplitude within about x0.7-1.4 for 95 % of nights,
as between the real calibration nights), which normalises ``SubjectParams.amplitude`` away.

Everything is vectorised: an 8-h night at 100 Hz takes a few seconds on one core.
The same seed gives the same night, bit for bit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..doc_sections import filled
from ..stages import EDF_STAGE_TEXTS, EPOCH_S, N_STAGES, edf_stage_annotations, epoch_samples
from .control import control_traces
from .envelope import draw_targets, impose_envelope
from .hypnogram_model import Bouts, epochs_to_bouts, generate_bouts
from .parameters import SimulationParams, SubjectParams, load_params, random_subject
from .synthesis import synthesise

log = logging.getLogger(__name__)

__all__ = [
    "SimulatedNight", "simulate_night", "simulate_subjects", "simulate_hypnogram", "ensure_demo_recording",
    "write_night_edf", "EDF_STAGE_TEXT",
]

CHANNEL = "Fpz-Cz"
DEMO_HOURS = 8.0
DEMO_SEED = 20240611
DEMO_SFREQ = 100.0

#: Parameter descriptions several functions here share, filled into their docstrings'
#: ``{name}`` fields by :func:`_shared_doc` (:func:`~sleepnet.doc_sections.filled`).
_PARAM_DOCS = {
    "subject": """
subject : SubjectParams, optional
    The simulated person (default: drawn from ``seed``).
""",
    "params": """
params : SimulationParams, optional
    The simulator's parameters (default: :func:`~sleepnet.sim.parameters.load_params`).
""",
    "night_of": """
hours : float
    Time in bed, h, as given to :func:`simulate_night`.
seed : int
    The night's seed.
""",
}
_shared_doc = filled(**_PARAM_DOCS)


@dataclass(frozen=True)
class SimulatedNight:
    """A simulated recording: one Fpz-Cz channel and its hypnogram.

    Made by :func:`simulate_night` and :func:`simulate_hypnogram`; :func:`write_night_edf`
    writes it as EDF+.

    Parameters
    ----------
    eeg_uv : numpy.ndarray
        (n_samples,) float32 signal in µV.
    sfreq : float
        Sampling rate, Hz.
    labels : numpy.ndarray
        (n_epochs,) int8 stage code per 30-s epoch from the start (the stage covering
        most of the epoch).
    subject : SubjectParams
        The simulated person.
    seed : int
        The seed that reproduces this night.
    stage_changes_s : numpy.ndarray
        (n_bouts,) start time of each stage bout, s (off the epoch grid).
    channel : str, default "Fpz-Cz"
        Channel label.
    """

    eeg_uv: np.ndarray
    sfreq: float
    labels: np.ndarray
    subject: SubjectParams
    seed: int
    stage_changes_s: np.ndarray
    channel: str = CHANNEL

    @property
    def n_epochs(self) -> int:
        """Number of labelled 30-s epochs."""
        return len(self.labels)


def _with_envelope(eeg_uv: np.ndarray, sfreq: float, labels: np.ndarray, params: SimulationParams,
                   rng: np.random.Generator) -> np.ndarray:
    """Impose the night's spectral envelope (:mod:`sleepnet.sim.envelope`) when the
    parameters have one; its random draws come from a fourth child of the night's seed."""
    if params.envelope is None or len(labels) == 0:
        return eeg_uv
    env_rng = np.random.default_rng(rng.spawn(1)[0])
    return impose_envelope(eeg_uv, sfreq, draw_targets(params.envelope, labels, env_rng))


def _night_streams(seed: int, *salt: int) -> tuple[np.random.Generator, ...]:
    """A night's random streams from ``seed``: (parent, subject, hypnogram, signal). The
    truth functions (:func:`simulated_arousals`, :func:`simulated_movements`) draw from the
    same streams as :func:`simulate_night`, which is what makes their times the night's own."""
    rng = np.random.default_rng([int(seed), 0x51EE9, *salt])
    subj_rng, hyp_rng, sig_rng = (np.random.default_rng(s) for s in rng.spawn(3))
    return rng, subj_rng, hyp_rng, sig_rng


def _night_setup(seed: int, subject: SubjectParams | None, params: SimulationParams | None,
                 *salt: int) -> tuple[SimulationParams, SubjectParams, np.random.Generator, np.random.Generator,
                                      np.random.Generator]:
    """What a night starts from: ``params`` (None: the shipped ones), ``subject`` (None: drawn
    from the night's subject stream) and the night's streams (parent, hypnogram, signal) of
    :func:`_night_streams` ``(seed, *salt)``."""
    params = params or load_params()
    rng, subj_rng, hyp_rng, sig_rng = _night_streams(seed, *salt)
    if subject is None:
        subject = random_subject(subj_rng, params.subjects)
    return params, subject, rng, hyp_rng, sig_rng


def _synthesised_night(bouts: Bouts, n_epochs: int | None, seed: int, sfreq: float, subject: SubjectParams,
                       params: SimulationParams, rng: np.random.Generator,
                       sig_rng: np.random.Generator) -> SimulatedNight:
    """The night of ``bouts``: its signal synthesised at ``sfreq`` from ``sig_rng``, the
    envelope imposed (``rng``), labelled for its first ``n_epochs`` epochs (None: every
    complete 30-s epoch of the signal)."""
    eeg = synthesise(bouts, sfreq, subject, params.stages, sig_rng)
    if n_epochs is None:
        n_epochs = len(eeg) // epoch_samples(sfreq)
    labels = bouts.labels[:n_epochs]
    eeg = _with_envelope(eeg, sfreq, labels, params, rng)
    return SimulatedNight(eeg_uv=eeg, sfreq=float(sfreq), labels=labels.astype(np.int8),
                          subject=subject, seed=int(seed), stage_changes_s=bouts.start_s.copy())


@_shared_doc
def simulate_night(hours: float, seed: int, sfreq: float = 100.0, subject: SubjectParams | None = None,
                   params: SimulationParams | None = None) -> SimulatedNight:
    """Simulate one night of ``hours`` in bed (from lights off) at ``sfreq`` Hz.

    The hypnogram, the subject (unless given) and the signal all follow from ``seed``.
    The signal is synthesised at ``sfreq`` itself (components are defined in Hz), not
    resampled.

    Parameters
    ----------
    hours : float
        Time in bed, h (> 0).
    seed : int
        The seed: the same seed gives the same night, bit for bit.
    sfreq : float, default 100.0
        Sampling rate, Hz (at least 50).
    {subject}
    {params}

    Returns
    -------
    SimulatedNight
        The night, with one label per complete 30-s epoch.

    Raises
    ------
    ValueError
        When ``hours`` is not positive or ``sfreq`` is below 50 Hz.
    """
    if not np.isfinite(hours) or hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if not np.isfinite(sfreq) or sfreq < 50.0:
        raise ValueError(f"sfreq must be at least 50 Hz, got {sfreq}")
    params, subject, rng, hyp_rng, sig_rng = _night_setup(seed, subject, params)
    bouts = generate_bouts(params.hypnogram, hours, hyp_rng)
    return _synthesised_night(bouts, None, seed, sfreq, subject, params, rng, sig_rng)


@_shared_doc
def simulate_hypnogram(labels: np.ndarray, seed: int, sfreq: float = 100.0, subject: SubjectParams | None = None,
                       params: SimulationParams | None = None) -> SimulatedNight:
    """Synthesise the signal for a given hypnogram (stage codes 0..4 per 30-s epoch, e.g.
    a real night's), with stage changes moved off the epoch grid as in
    :func:`simulate_night`. Deterministic for ``seed``.

    Parameters
    ----------
    labels : numpy.ndarray
        (n_epochs,) stage codes 0..4, one per 30-s epoch.
    seed : int
        The seed.
    sfreq : float, default 100.0
        Sampling rate, Hz.
    {subject}
    {params}

    Returns
    -------
    SimulatedNight
        The night, with ``labels`` as given.

    Raises
    ------
    ValueError
        When ``labels`` is not a non-empty 1-D array of stage codes 0..4.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or labels.min() < 0 or labels.max() >= N_STAGES:
        raise ValueError("labels must be a non-empty 1-D array of stage codes 0..4")
    params, subject, rng, bout_rng, sig_rng = _night_setup(seed, subject, params, 1)
    bouts = epochs_to_bouts(labels.astype(np.int8), bout_rng)
    return _synthesised_night(bouts, len(bouts.labels), seed, sfreq, subject, params, rng, sig_rng)


@_shared_doc
def simulate_subjects(n: int, hours: float, seed: int, sfreq: float = 100.0,
                      params: SimulationParams | None = None) -> list[SimulatedNight]:
    """``n`` nights of ``n`` different simulated people; night ``i`` uses seed
    ``seed * 1000 + i`` so each is reproducible on its own.

    Parameters
    ----------
    n : int
        Number of nights (people).
    hours : float
        Time in bed per night, h.
    seed : int
        The base seed.
    sfreq : float, default 100.0
        Sampling rate, Hz.
    {params}

    Returns
    -------
    list of SimulatedNight
        The ``n`` nights, in seed order.
    """
    return [simulate_night(hours, seed * 1000 + i, sfreq, None, params) for i in range(n)]


def ensure_demo_recording(path: Path | None = None) -> Path:
    """The `make demo` recording: an 8-h simulated night with labels at 100 Hz, fixed
    seed, in our continuous npz format. Generated on first use if the file is missing.

    ``path`` defaults to ``demo-night.npz`` in :func:`sleepnet.user_dirs.data_dir`
    (``$SLEEPSTREAM_DATA_DIR``, else the user cache folder), never next to the code.

    Parameters
    ----------
    path : Path, optional
        Where the recording lives (default above).

    Returns
    -------
    Path
        The recording's path (written atomically when it was missing).
    """
    from ..io.recordings import write_continuous_npz
    from ..user_dirs import demo_recording_path

    path = Path(path) if path is not None else demo_recording_path()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    night = simulate_night(DEMO_HOURS, DEMO_SEED, DEMO_SFREQ)
    tmp = path.with_name(path.stem + ".tmp.npz")
    write_continuous_npz(tmp, night.eeg_uv, night.sfreq, night.labels, night.channel)
    tmp.replace(path)
    log.info("wrote the demo recording %s (%d epochs)", path, night.n_epochs)
    return path


# --------------------------------------------------------------------------- EDF+ output

#: EDF+ annotation text per stage code 0..4 (the one table: sleepnet.stages.EDF_STAGE_TEXTS).
EDF_STAGE_TEXT = tuple(EDF_STAGE_TEXTS[k] for k in range(N_STAGES))


def write_night_edf(path: str | Path, night: SimulatedNight) -> None:
    """Write a simulated night as EDF+: one ``EEG Fpz-Cz`` signal in µV and the hypnogram
    as annotations (one per run of equal 30-s labels, :data:`sleepnet.stages.EDF_STAGE_TEXTS`), readable by MNE
    and :func:`sleepnet.io.hypnograms.read_hypnogram`.

    The signal is padded with zeros to whole 1-s data records.

    Parameters
    ----------
    path : str or Path
        The EDF+ file to write.
    night : SimulatedNight
        The night.
    """
    from edfio import Edf, EdfAnnotation, EdfSignal

    x = np.asarray(night.eeg_uv, dtype=np.float64)
    n_rec = int(np.ceil(len(x) / night.sfreq))
    n_full = int(round(n_rec * night.sfreq))
    if n_full > len(x):  # whole 1-s data records
        x = np.concatenate([x, np.zeros(n_full - len(x))])
    lim = float(np.ceil(np.max(np.abs(x)) * 1.05 + 1.0))
    sig = EdfSignal(x, night.sfreq, label=f"EEG {night.channel}", physical_dimension="uV",
                    physical_range=(-lim, lim), transducer_type="simulated",
                    prefiltering="none")
    anns = [EdfAnnotation(onset, duration, text)
            for onset, duration, text in edf_stage_annotations(night.labels, EPOCH_S)]
    Edf([sig], data_record_duration=1.0, annotations=anns).write(Path(path))


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of True in a 1-D ``mask`` starts and ends (the index after its last
    True), in order."""
    on = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    return edges[0::2], edges[1::2]


@_shared_doc
def simulated_arousals(hours: float, seed: int, params: SimulationParams | None = None,
                       level: float = 0.5) -> np.ndarray:
    """The arousals of :func:`simulate_night` ``(hours, seed)``: known truth for arousal
    detectors.

    Rebuilds the night's control traces from the same seed (the arousal envelope is the
    first draw from the signal's random stream, so the times are exact, whatever the
    sampling rate) and returns ``(n, 2)`` onset and offset times (s from the start of the
    recording), where the smooth 0..1 arousal envelope (3-15 s of alpha x3, beta x2, muscle
    x4, slow waves x0.4) crosses ``level``.

    Parameters
    ----------
    {night_of}
    {params}
    level : float, default 0.5
        The envelope level (0..1) that marks an arousal.

    Returns
    -------
    numpy.ndarray
        (n, 2) onset and offset times, s.
    """
    params = params or load_params()
    _rng, _subj_rng, hyp_rng, sig_rng = _night_streams(seed)
    bouts = generate_bouts(params.hypnogram, hours, hyp_rng)
    ctrl = control_traces(bouts, sig_rng)
    starts, ends = _true_runs(ctrl.arousal >= level)
    return np.stack([ctrl.t_s[starts], ctrl.t_s[np.minimum(ends, len(ctrl.t_s) - 1)]], axis=1) if len(starts) \
        else np.zeros((0, 2))


@_shared_doc
def simulated_movements(hours: float, seed: int, sfreq: float = 100.0,
                        params: SimulationParams | None = None) -> np.ndarray:
    """The movement artefacts of :func:`simulate_night` ``(hours, seed, sfreq)``: known
    truth for artefact detectors.

    Re-synthesises only the night's movement component from the same seed (the other
    components' random streams are drawn but not synthesised, so this costs a fraction of
    the night) and returns ``(n, 2)`` onset and offset times (s from the start of the
    recording) of each run of samples where it is non-zero (2-8 s each; overlapping
    movements merge into one run).

    Parameters
    ----------
    {night_of}
    sfreq : float, default 100.0
        Sampling rate, Hz, as given to :func:`simulate_night`.
    {params}

    Returns
    -------
    numpy.ndarray
        (n, 2) onset and offset times, s.
    """
    params, subject, _rng, hyp_rng, sig_rng = _night_setup(seed, None, params)
    bouts = generate_bouts(params.hypnogram, hours, hyp_rng)
    mv = synthesise(bouts, sfreq, subject, params.stages, sig_rng, component="movement")
    starts, ends = _true_runs(mv != 0)
    return np.stack([starts / sfreq, ends / sfreq], axis=1) if len(starts) else np.zeros((0, 2))
