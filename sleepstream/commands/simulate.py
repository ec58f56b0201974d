"""`sleepstream simulate`: write simulated Fpz-Cz nights with their hypnograms.

Formats: our continuous npz (``eeg`` µV, ``sfreq``, ``labels``, ``channel``) or EDF+
(signal ``EEG Fpz-Cz`` in µV, hypnogram as ``Sleep stage W/N1/N2/N3/R`` annotations, the report's texts).
With ``--subjects N`` (N > 1) it writes N nights of N different simulated people,
``<out>_s00.<ext>`` ... ``<out>_s{N-1}.<ext>``; night ``i`` is what
``simulate_subjects(N, hours, seed, sfreq)[i]`` returns.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sleepstream.commands import command_doc

HELP = "write simulated Fpz-Cz sleep EEG nights with their hypnograms (npz or EDF+)"
EXAMPLE = "sleepstream simulate --hours 8 --seed 1 --out night.npz"

FORMATS = ("npz", "edf")
MIN_SFREQ_HZ = 50.0
MAX_SFREQ_HZ = 5000.0
MAX_HOURS = 48.0


@command_doc
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sleepstream simulate``: ``--hours``, ``--seed``, ``--out``,
    ``--format``, ``--sfreq``, ``--subjects`` and ``--quiet``.
    """
    p.add_argument("--hours", type=float, default=8.0, help="time in bed from lights off, hours (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed: the same seed gives the same night (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("night.npz"), help="output file (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="npz or edf (default: from the --out suffix, else npz)")
    p.add_argument("--sfreq", type=float, default=100.0,
                   help="sampling rate, Hz; the signal is synthesised at this rate (default: %(default)s)")
    p.add_argument("--subjects", type=int, default=1, metavar="N",
                   help="write N nights of N different simulated people: <out>_s00 ... (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no summary lines")


def output_paths(out: Path, fmt: str, subjects: int) -> list[Path]:
    """Where the nights go.

    Parameters
    ----------
    out : Path
        The ``--out`` file; ``.<fmt>`` is added when its suffix is not that.
    fmt : str
        ``npz`` or ``edf``.
    subjects : int
        How many nights (one per simulated person).

    Returns
    -------
    list of Path
        ``out`` itself for one subject, else ``<stem>_sNN.<ext>`` for each (at least two
        digits, zero-padded).
    """
    ext = "." + fmt
    base = out if out.suffix.lower() == ext else out.with_name(out.name + ext)
    if subjects == 1:
        return [base]
    width = max(2, len(str(subjects - 1)))
    return [base.with_name(f"{base.stem}_s{i:0{width}d}{ext}") for i in range(subjects)]


def _check(args: argparse.Namespace) -> str:
    from sleepnet.errors import SleepstreamError

    if not (args.hours > 0) or args.hours > MAX_HOURS:
        raise SleepstreamError(f"--hours must be more than 0 and at most {MAX_HOURS:g}, got {args.hours:g}")
    if args.hours * 3600.0 < 30.0:
        raise SleepstreamError(f"--hours {args.hours:g} is shorter than one 30-s epoch")
    if not (MIN_SFREQ_HZ <= args.sfreq <= MAX_SFREQ_HZ):
        raise SleepstreamError(f"--sfreq must be between {MIN_SFREQ_HZ:g} and {MAX_SFREQ_HZ:g} Hz, got {args.sfreq:g}")
    if args.subjects < 1:
        raise SleepstreamError(f"--subjects must be at least 1, got {args.subjects}")
    if args.seed < 0:
        raise SleepstreamError(f"--seed must be 0 or more, got {args.seed}")
    fmt = args.format or ("edf" if args.out.suffix.lower() == ".edf" else "npz")
    if args.format and args.out.suffix.lower() in (".npz", ".edf") and args.out.suffix.lower() != "." + args.format:
        raise SleepstreamError(f"{args.out}: the suffix does not match --format {args.format}")
    parent = args.out.parent
    if not parent.is_dir():
        raise SleepstreamError(f"{args.out}: folder {parent} does not exist")
    return fmt


@command_doc
def run(args: argparse.Namespace) -> int:
    """Simulate the nights and write them, one summary line each unless ``--quiet``.

    Returns
    -------
    int
        0 when every night was written.

    Raises
    ------
    SleepstreamError
        ``--hours``, ``--sfreq``, ``--subjects`` or ``--seed`` out of range, an ``--out``
        suffix that contradicts ``--format``, a folder that does not exist, or a file
        that cannot be written.
    """
    fmt = _check(args)

    import numpy as np

    from sleepnet.errors import SleepstreamError
    from sleepnet.io.recordings import write_continuous_npz
    from sleepnet.sim.night import simulate_night, write_night_edf
    from sleepnet.stages import STAGES

    paths = output_paths(args.out, fmt, args.subjects)
    for i, path in enumerate(paths):
        seed = args.seed if args.subjects == 1 else args.seed * 1000 + i
        night = simulate_night(args.hours, seed, args.sfreq)
        try:
            if fmt == "npz":
                write_continuous_npz(path, night.eeg_uv, night.sfreq, night.labels, night.channel)
            else:
                write_night_edf(path, night)
        except OSError as exc:
            raise SleepstreamError(f"{path}: cannot write ({exc.strerror or exc})") from None
        if not args.quiet:
            counts = np.bincount(night.labels, minlength=len(STAGES))
            mix = " ".join(f"{s} {100.0 * c / max(len(night.labels), 1):.0f}%" for s, c in zip(STAGES, counts))
            print(f"{path}: {len(night.labels)} epochs at {night.sfreq:g} Hz, seed {seed}, {mix}")
    return 0
