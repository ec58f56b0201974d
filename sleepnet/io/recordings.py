"""Read recordings into one continuous channel in µV.

Formats
-------
* Continuous npz (ours): ``eeg`` float32 µV ``(n_samples,)``, ``sfreq`` float,
  optional ``labels`` int8 per 30-s epoch from the start (0..4, -1 unscored), optional
  ``channel`` str.
* Windowed npz (the ``sample.npz`` of the CNN-LSTM demo this design starts from):
  ``X`` (or ``x``/``data``) float32 shaped ``(n, 3000)``, ``(n, 1, 3000)`` (one window of
  n epochs, e.g. the design's ``(5, 1, 3000)``) or ``(n, 5, 1, 3000)`` (n windows) at
  100 Hz, optional ``y`` (or ``Y``/``labels``): one label per row, or per window, or a
  scalar. Rows are consecutive 30-s epochs. A window's label belongs to its LAST epoch
  (a scalar ``y`` of one window too), which is scored with the epochs before it in the
  window as its context; windows sliding by one epoch are joined into the epochs they
  cover, other windows are scored back to back. The design's pipeline z-scores each
  epoch: such files are recognised downstream (:mod:`sleepnet.normalised`).
* EDF/BDF through MNE: one channel picked by name (default
  :data:`~sleepnet.io.derivations.DEFAULT_CHANNEL`, ``Fpz-Cz``, which finds Sleep-EDF's
  ``EEG Fpz-Cz``: matching ignores case, spaces, an ``EEG`` prefix and a ``-Ref``
  suffix), or a derivation of referential channels (``F4-M1``, ``C4-(M1+M2)/2``;
  :mod:`sleepnet.io.derivations`), volts converted to µV.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..stages import EPOCH_S, N_STAGES, UNSCORED, epoch_samples
from .derivations import DEFAULT_CHANNEL, Derivation, match_label, normalise_label, resolve_derivation

log = logging.getLogger(__name__)

WINDOWED_SFREQ = 100.0
WINDOWED_EPOCH_SAMPLES = int(WINDOWED_SFREQ * EPOCH_S)


@dataclass(frozen=True)
class Recording:
    """One EEG channel of a recording.

    Parameters
    ----------
    eeg_uv : numpy.ndarray
        (n_samples,) signal in µV: float32 as read, float64 for a derivation (computed
        in float64 from float32 channels, as the live streamer computes it).
    sfreq : float
        Sampling rate, Hz.
    channel : str
        The channel's label.
    source : str
        The file it came from.
    labels : numpy.ndarray, optional
        (n_epochs,) int8 stage codes per 30-s epoch from the start, or None.
    """

    eeg_uv: np.ndarray
    sfreq: float
    channel: str
    source: str
    labels: np.ndarray | None = None

    @property
    def duration_s(self) -> float:
        """Length of the signal, s."""
        return len(self.eeg_uv) / self.sfreq

    @property
    def n_epochs(self) -> int:
        """Complete 30-s epochs in the signal."""
        return len(self.eeg_uv) // epoch_samples(self.sfreq)


#: ``'EEG Fpz-Cz'`` -> ``'fpzcz'``: :func:`sleepnet.io.derivations.normalise_label` itself,
#: under the name this module had for it.
normalise_channel_name = normalise_label


def pick_channel(available: list[str], wanted: str, source: str) -> int:
    """Index of ``wanted`` among ``available`` (tolerant match), or a clear error.

    A derivation (``A-B``) is not one channel: see
    :func:`~sleepnet.io.derivations.resolve_derivation`.

    Parameters
    ----------
    available : list of str
        Channel labels, in channel order.
    wanted : str
        The label asked for.
    source : str
        The file or stream, for the error message.

    Returns
    -------
    int
        The channel's index.

    Raises
    ------
    InputFileError
        No channel matches (the message lists those there are).
    """
    idx = match_label(available, wanted)
    if idx is not None:
        return idx
    raise InputFileError(
        f"{source}: no channel matching '{wanted}'; it has: {', '.join(available) or 'none'}"
    )


#: The channel ``wanted`` names, or the derivation (``A-B``, ``A-(B+C)/2``) it writes from
#: referential channels: :func:`sleepnet.io.derivations.resolve_derivation` itself, under
#: the name the readers of recordings (and :mod:`sleepstream.api`) know it by.
resolve_channel = resolve_derivation


def derived_signal_uv(channels_v: np.ndarray, derivation: Derivation) -> np.ndarray:
    """The signal to score from ``channels_v`` (n_picked, n_samples) in VOLTS, one row per
    index of ``derivation``: each channel to float32 µV (as one channel is read), then
    the derivation in float64 (:meth:`Derivation.apply`, as the live streamer does it on
    a stream of those float32 µV channels); one channel as it is stays float32.

    Parameters
    ----------
    channels_v : numpy.ndarray
        (n_picked, n_samples) the picked channels, V, row ``k`` for ``derivation.indices[k]``.
    derivation : Derivation
        What to compute from them.

    Returns
    -------
    numpy.ndarray
        (n_samples,) µV: float32 for one channel as it is, float64 for a derivation.
    """
    uv = (np.asarray(channels_v) * 1e6).astype(np.float32)
    if derivation.is_single:
        return uv[0]
    local = Derivation(tuple(range(len(derivation.indices))), derivation.weights, derivation.name,
                       derivation.labels)
    return local.apply(uv.T)


def read_recording(path: str | Path, channel: str = DEFAULT_CHANNEL) -> Recording:
    """Read an npz, EDF or BDF file into a :class:`Recording` (µV).

    Parameters
    ----------
    path : str or Path
        A continuous or windowed npz, or an EDF/BDF (``.rec`` too) file (see the module
        docstring).
    channel : str, default DEFAULT_CHANNEL
        For EDF/BDF: the channel label, or a derivation of referential channels
        (``F4-M1``, ``C4-(M1+M2)/2``). npz files hold one channel and ignore it.

    Returns
    -------
    Recording
        The signal in µV, with the labels an npz file carries.

    Raises
    ------
    InputFileError
        One line: no such file, an unknown suffix, an unreadable or truncated file, a
        missing or misshapen array, bad labels, or no channel matching ``channel``.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in (".edf", ".bdf", ".rec"):
        return _read_edf(path, channel)
    raise InputFileError(f"{path}: unknown recording format '{suffix}' (expected .npz, .edf or .bdf)")


def _first_key(data: np.lib.npyio.NpzFile, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in data.files), None)


def _read_npz(path: Path) -> Recording:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError...
        raise InputFileError(f"{path}: not a readable npz file ({exc.__class__.__name__}: {exc})") from None
    with data:
        if "eeg" in data.files:
            return _read_continuous_npz(path, data)
        key = _first_key(data, ("X", "x", "data"))
        if key is None:
            raise InputFileError(
                f"{path}: no signal found; expected 'eeg' (continuous) or 'X'/'x'/'data' (windows), "
                f"it has: {', '.join(data.files) or 'nothing'}"
            )
        return _read_windowed_npz(path, data, key)


def _check_labels(path: Path, labels: np.ndarray, n_epochs: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputFileError(f"{path}: labels must be one value per epoch, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise InputFileError(f"{path}: labels must be integers 0..4 (or -1 for unscored)")
    labels = labels.astype(np.int8)
    bad = (labels < UNSCORED) | (labels >= N_STAGES)
    if bad.any():
        raise InputFileError(
            f"{path}: labels must be 0..4 (W,N1,N2,N3,REM) or -1, found {sorted(set(labels[bad].tolist()))}"
        )
    if len(labels) > n_epochs + 1:
        raise InputFileError(
            f"{path}: {len(labels)} labels for a signal of only {n_epochs} complete 30-s epochs"
        )
    return labels[:n_epochs] if len(labels) > n_epochs else labels


def _read_continuous_npz(path: Path, data) -> Recording:
    eeg = np.asarray(data["eeg"])
    if eeg.ndim != 1:
        raise InputFileError(f"{path}: 'eeg' must be 1-D (n_samples,), got shape {eeg.shape}")
    if not np.issubdtype(eeg.dtype, np.number):
        raise InputFileError(f"{path}: 'eeg' must be numeric, got {eeg.dtype}")
    if "sfreq" not in data.files:
        raise InputFileError(f"{path}: continuous npz needs 'sfreq' (Hz) beside 'eeg'")
    sfreq = float(np.asarray(data["sfreq"]).reshape(-1)[0])
    if not np.isfinite(sfreq) or sfreq <= 0:
        raise InputFileError(f"{path}: 'sfreq' must be a positive rate in Hz, got {sfreq}")
    channel = str(data["channel"]) if "channel" in data.files else "Fpz-Cz"
    rec = Recording(eeg_uv=eeg.astype(np.float32), sfreq=sfreq, channel=channel, source=str(path))
    labels = None
    if "labels" in data.files:
        labels = _check_labels(path, data["labels"], rec.n_epochs)
    return Recording(eeg_uv=rec.eeg_uv, sfreq=sfreq, channel=channel, source=str(path), labels=labels)


def _read_windowed_npz(path: Path, data, key: str) -> Recording:
    x = np.asarray(data[key], dtype=np.float32)
    n_t = WINDOWED_EPOCH_SAMPLES
    seq = 1             # epochs per window; each window's label is its last epoch's
    window_shape = x.ndim in (3, 4)
    if x.ndim == 2 and x.shape[1] == n_t:
        epochs = x
    elif x.ndim == 3 and x.shape[1:] == (1, n_t):
        epochs = x[:, 0]
    elif x.ndim == 4 and x.shape[2:] == (1, n_t) and x.shape[1] >= 1:
        seq = x.shape[1]
        # Windows sliding by one epoch: the first window's epochs, then each window's last.
        sliding = len(x) > 1 and np.array_equal(x[1:, : seq - 1, 0], x[:-1, 1:, 0])
        if sliding:
            epochs = np.concatenate([x[0, :, 0], x[1:, -1, 0]])
        else:
            if len(x) > 1:
                log.info("%s: %d windows that do not slide by one epoch: scored back to back, each window's "
                         "last epoch with the %d before it as context", path, len(x), seq - 1)
            epochs = x[:, :, 0].reshape(-1, n_t)
    else:
        raise InputFileError(
            f"{path}: '{key}' has shape {x.shape}; expected (n, 3000), (n, 1, 3000) or (n, 5, 1, 3000) at 100 Hz"
        )
    if len(epochs) == 0:
        raise InputFileError(f"{path}: '{key}' holds no epochs")
    eeg = epochs.reshape(-1)
    if np.nanmax(np.abs(eeg)) < 0.01:  # amplitudes of a few mV at most: these are volts
        log.info("%s: signal looks like volts; converting to µV", path)
        eeg = eeg * 1e6
    n_epochs = len(epochs)
    labels = None
    ykey = _first_key(data, ("y", "Y", "labels"))
    if ykey is not None:
        y = np.asarray(data[ykey])
        if y.ndim == 0 and window_shape:
            # One window (the design's (5, 1, 3000) with a scalar y): y is its last epoch's stage.
            labels = np.full(n_epochs, UNSCORED, dtype=np.int64)
            labels[-1] = int(y)
        elif y.ndim == 0:
            labels = np.full(n_epochs, int(y), dtype=np.int64)
        else:
            y = y.reshape(len(y), -1)[:, -1] if y.ndim > 1 else y
            if x.ndim == 4 and len(y) == len(x) and n_epochs == len(x) + seq - 1:
                # Sliding windows, one label per window for its last epoch: the first
                # window's earlier epochs are unlabelled.
                y = np.concatenate([np.full(seq - 1, UNSCORED), y])
            elif x.ndim == 4 and len(y) == len(x) and n_epochs == len(x) * seq:
                # Windows back to back: each label is its window's last epoch's.
                full = np.full(n_epochs, UNSCORED, dtype=np.int64)
                full[seq - 1::seq] = y
                y = full
            if len(y) != n_epochs:
                raise InputFileError(f"{path}: {len(y)} labels for {n_epochs} epochs")
            labels = y
        labels = _check_labels(path, labels, n_epochs)
    return Recording(eeg_uv=eeg.astype(np.float32), sfreq=WINDOWED_SFREQ, channel="Fpz-Cz",
                     source=str(path), labels=labels)


def list_edf_channels(path: str | Path) -> list[str]:
    """The channel labels of an EDF/BDF file, in channel order.

    Parameters
    ----------
    path : str or Path
        The EDF/BDF file (checked complete, :func:`check_edf_complete`).

    Returns
    -------
    list of str
        The labels as MNE reads them.

    Raises
    ------
    InputFileError
        The file is truncated or not readable EDF/BDF.
    """
    raw = _open_edf(Path(path))
    return list(raw.ch_names)


def check_edf_complete(path: Path) -> None:
    """Refuse an EDF/BDF file shorter than its header says (a truncated copy or download).

    MNE would silently read the records that are there; a sleep researcher wants to know.
    A header announcing -1 records (still being recorded) is not checked.

    Parameters
    ----------
    path : Path
        The EDF/BDF file (``.bdf``: 3 bytes per sample, else 2).

    Raises
    ------
    InputFileError
        The header is truncated or invalid, or the file is shorter than it announces.
    """
    bytes_per_sample = 3 if path.suffix.lower() == ".bdf" else 2
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
            if len(head) < 256:
                raise InputFileError(f"{path}: truncated EDF/BDF header ({len(head)} bytes)")
            n_header = int(head[184:192].decode("ascii").strip())
            n_records = int(head[236:244].decode("ascii").strip())
            ns = int(head[252:256].decode("ascii").strip())
            fh.seek(256 + ns * 216)
            spr = fh.read(ns * 8).decode("ascii")
            per_record = sum(int(spr[i * 8:(i + 1) * 8].strip()) for i in range(ns))
    except (ValueError, UnicodeDecodeError):
        raise InputFileError(f"{path}: not a valid EDF/BDF header") from None
    if n_records < 0:
        return  # unknown length (still being recorded): nothing to check
    expected = n_header + n_records * per_record * bytes_per_sample
    actual = path.stat().st_size
    if actual < expected:
        raise InputFileError(
            f"{path}: truncated: the header announces {n_records} data records ({expected} bytes) "
            f"but the file has {actual} bytes"
        )


def _open_edf(path: Path):
    import mne

    check_edf_complete(path)

    try:
        if path.suffix.lower() == ".bdf":
            return mne.io.read_raw_bdf(path, preload=False, verbose="error")
        return mne.io.read_raw_edf(path, preload=False, verbose="error")
    except Exception as exc:
        raise InputFileError(f"{path}: not a readable EDF/BDF file ({exc.__class__.__name__}: {exc})") from None


def _read_edf(path: Path, channel: str) -> Recording:
    raw = _open_edf(path)
    deriv = resolve_derivation(list(raw.ch_names), channel, str(path))
    try:
        sig = raw.get_data(picks=list(deriv.indices))
    except Exception as exc:
        raise InputFileError(f"{path}: could not read channel '{deriv.name}' ({exc.__class__.__name__}: {exc}); is the file truncated?") from None
    sfreq = float(raw.info["sfreq"])
    for i in deriv.indices:
        if raw.info["chs"][i].get("unit_mul", 0) != 0:  # pragma: no cover - MNE normalises to SI
            log.warning("%s: unusual unit multiplier on %s", path, raw.ch_names[i])
    eeg_uv = derived_signal_uv(sig, deriv)  # MNE returns volts
    return Recording(eeg_uv=eeg_uv, sfreq=sfreq, channel=deriv.name, source=str(path))


def require_epochs(rec: Recording) -> Recording:
    """``rec`` itself, once it is known to hold at least one whole 30-s epoch.

    Parameters
    ----------
    rec : Recording
        The recording about to be scored.

    Returns
    -------
    Recording
        ``rec``, unchanged.

    Raises
    ------
    InputFileError
        One line naming the recording and its length in s: shorter than one 30-s epoch.
    """
    if rec.n_epochs == 0:
        raise InputFileError(f"{rec.source}: shorter than one 30-s epoch ({rec.duration_s:.1f} s)")
    return rec


def with_labels(rec: Recording, labels: np.ndarray) -> Recording:
    """A copy of ``rec`` carrying ``labels`` (checked against its length).

    Parameters
    ----------
    rec : Recording
        The recording.
    labels : numpy.ndarray
        Stage codes 0..4 or -1 per 30-s epoch; one more than ``rec.n_epochs`` (a last,
        incomplete epoch) is cut.

    Returns
    -------
    Recording
        ``rec`` with ``labels``.

    Raises
    ------
    InputFileError
        The labels are not 1-D integer codes 0..4 or -1, or more than one too many.
    """
    labels = _check_labels(Path(rec.source), np.asarray(labels), rec.n_epochs)
    return Recording(eeg_uv=rec.eeg_uv, sfreq=rec.sfreq, channel=rec.channel, source=rec.source, labels=labels)


def write_continuous_npz(path: str | Path, eeg_uv: np.ndarray, sfreq: float,
                         labels: np.ndarray | None = None, channel: str = "Fpz-Cz") -> None:
    """Write our continuous npz format (see module docstring).

    Parameters
    ----------
    path : str or Path
        The npz to write (numpy adds ``.npz`` when the name lacks it).
    eeg_uv : numpy.ndarray
        (n_samples,) signal, µV (written as float32).
    sfreq : float
        Sampling rate, Hz.
    labels : numpy.ndarray, optional
        int8 stage codes per 30-s epoch from the start.
    channel : str, default "Fpz-Cz"
        The channel's label.
    """
    arrays: dict[str, np.ndarray] = {
        "eeg": np.asarray(eeg_uv, dtype=np.float32),
        "sfreq": np.asarray(float(sfreq)),
        "channel": np.asarray(channel),
    }
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int8)
    np.savez_compressed(path, **arrays)


def write_windowed_npz(path: str | Path, epochs: np.ndarray, labels: np.ndarray | None = None,
                       seq: int = 5) -> None:
    """Write the design's windowed format (``sample.npz``): ``X`` (n, seq, 1, 3000), the
    windows of ``seq`` consecutive epochs sliding by one, and ``y`` (n,), the label of
    each window's LAST epoch.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` to write.
    epochs : ndarray, shape (n_epochs, 3000)
        Consecutive 30-s epochs at 100 Hz (µV, or per-epoch normalised).
    labels : ndarray, shape (n_epochs,), optional
        Stage codes per epoch; window k gets epoch ``k + seq - 1``'s.
    seq : int, default 5
        Epochs per window.

    Raises
    ------
    ValueError
        ``epochs`` is not (n >= seq, 3000).
    """
    e = np.asarray(epochs, dtype=np.float32)
    if e.ndim != 2 or e.shape[1] != WINDOWED_EPOCH_SAMPLES or len(e) < seq:
        raise ValueError(f"epochs must be (n >= {seq}, {WINDOWED_EPOCH_SAMPLES}), got {e.shape}")
    x = np.stack([e[k:k + seq] for k in range(len(e) - seq + 1)])[:, :, None, :]
    arrays: dict[str, np.ndarray] = {"X": x}
    if labels is not None:
        arrays["y"] = np.asarray(labels, dtype=np.int64)[seq - 1:len(e)]
    np.savez_compressed(path, **arrays)
