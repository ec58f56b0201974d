"""Find the recordings of an archive and pair each with its hypnogram.

Inputs
------
Each input is one of:

* a recording file (``.edf``, ``.bdf``, ``.rec``, ``.npz``; any other path given by name
  is kept too, and fails in its own row with the reader's one-line error);
* a folder: every recording under it, sub-folders included;
* a glob pattern (``*``, ``?``, ``[...]``; ``**`` crosses folders), quoted so the shell
  leaves it alone;
* ``@FILE``: a text file listing one recording per line (a path or a glob), optionally
  followed by its hypnogram after a tab or a comma; blank lines and ``#`` comments are
  skipped; relative paths are relative to the list file's folder.

Files whose name contains ``hypnogram`` are never taken as recordings.

Pairing rule (for every recording without a hypnogram named in a list file)
----------------------------------------------------------------------------
1. Sleep-EDF: ``XXXXXXX*-PSG*.edf`` pairs with the one file in the same folder named
   ``XXXXXXX*-Hypnogram.edf`` with the same first 7 characters (the subject and night:
   ``SC4001E0-PSG.edf``, or an excerpt ``SC4001E0-PSG-first300s.edf``, with
   ``SC4001EC-Hypnogram.edf``).
2. Otherwise, ``<stem>.<ext>`` pairs with the one file in the same folder named
   ``<stem>-hypnogram.*``, ``<stem>_hypnogram.*`` or ``<stem>.hypnogram.*`` (any case,
   any hypnogram format :func:`sleepnet.io.hypnograms.read_hypnogram` reads).
3. No match: the night is scored without labels (an npz may carry its own).

Two candidate hypnograms for one recording is an error of that night alone.
"""
from __future__ import annotations

import glob
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SleepstreamError, parameter

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".edf", ".bdf", ".rec", ".npz")
LIST_PREFIX = "@"
_GLOB_CHARS = re.compile(r"[*?\[]")
_SLEEP_EDF_PSG = re.compile(r"^(.{7}).*-PSG.*\.edf$", re.IGNORECASE)
_GENERIC_HYPNOGRAM_SEPARATORS = ("-", "_", ".")


@dataclass(frozen=True)
class NightInput:
    """One recording of an archive, with its hypnogram where one pairs with it.

    Parameters
    ----------
    recording : Path
        The recording file (absolute).
    hypnogram : Path or None
        Its hypnogram file (absolute), or None.
    name : str
        The stem its outputs are named after (unique within the archive).
    problem : str
        Why this night cannot be scored before it is even read (e.g. two candidate
        hypnograms); empty when there is none.
    """

    recording: Path
    hypnogram: Path | None
    name: str
    problem: str = ""


def is_pattern(text: str) -> bool:
    """True when ``text`` is a glob pattern rather than a plain path.

    Parameters
    ----------
    text : str
        One input as typed, e.g. ``night*/SC4*.edf`` (a pattern) or ``SC4001E0-PSG.edf``
        (a plain path); a folder or file need not exist.

    Returns
    -------
    bool
        Whether it holds ``*``, ``?`` or ``[``.
    """
    return bool(_GLOB_CHARS.search(text))


def is_many(text: str) -> bool:
    """True when one input names several recordings: a folder, a glob or an ``@`` list.

    Parameters
    ----------
    text : str
        One input as typed: a recording, a folder, a glob pattern or ``@FILE``; a folder
        counts only where it exists now.

    Returns
    -------
    bool
        Whether it is an ``@FILE`` list, a glob pattern or an existing folder.
    """
    return text.startswith(LIST_PREFIX) or is_pattern(text) or Path(text).is_dir()


def looks_like_recording(path: Path) -> bool:
    """Whether a file found in a folder or by a pattern is taken as a recording.

    Parameters
    ----------
    path : Path
        A file met under a folder or matched by a pattern; only its name is looked at
        (it is not opened).

    Returns
    -------
    bool
        True for a :data:`RECORDING_SUFFIXES` suffix (any case) and a name without
        ``hypnogram``.
    """
    return path.suffix.lower() in RECORDING_SUFFIXES and "hypnogram" not in path.name.lower()


def _expand_glob(pattern: str, origin: str) -> list[Path]:
    hits = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    recs = [p for p in hits if p.is_file() and looks_like_recording(p)]
    if not recs:
        raise SleepstreamError(f"{origin}: matches no recording (.edf, .bdf, .npz)")
    return recs


def _expand_folder(folder: Path) -> list[Path]:
    recs = sorted(p for p in folder.rglob("*") if p.is_file() and looks_like_recording(p))
    if not recs:
        raise SleepstreamError(f"{folder}: folder holds no recording (.edf, .bdf, .npz)")
    return recs


def _read_list(spec: str) -> list[tuple[Path, Path | None]]:
    path = Path(spec[len(LIST_PREFIX):])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SleepstreamError(f"{path}: cannot read the list of recordings ({exc.__class__.__name__})") from None
    base = path.parent
    out: list[tuple[Path, Path | None]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in re.split(r"\t|,", line) if p.strip()]
        if len(parts) > 2:
            raise SleepstreamError(f"{path}:{lineno}: expected 'RECORDING[,HYPNOGRAM]', got {len(parts)} fields")
        rec = parts[0] if Path(parts[0]).is_absolute() else str(base / parts[0])
        hyp = None
        if len(parts) == 2:
            hyp = Path(parts[1]) if Path(parts[1]).is_absolute() else base / parts[1]
        if is_pattern(rec):
            if hyp is not None:
                raise SleepstreamError(f"{path}:{lineno}: a hypnogram can follow one recording, not a pattern")
            out += [(p, None) for p in _expand_glob(rec, f"{path}:{lineno}: {parts[0]}")]
        else:
            out.append((Path(rec), hyp))
    if not out:
        raise SleepstreamError(f"{path}: the list names no recording")
    return out


def expand_inputs(inputs: list[str]) -> list[tuple[Path, Path | None]]:
    """Recordings (and hypnograms named in list files) from the command's inputs, in order,
    each once.

    Parameters
    ----------
    inputs : list of str
        Recording paths, folders, glob patterns and ``@FILE`` lists (module docstring).

    Returns
    -------
    list of tuple of (Path, Path or None)
        Each recording (resolved) with the hypnogram its list file names, or None; a
        recording named twice is kept at its first place.

    Raises
    ------
    SleepstreamError
        A pattern, folder or list that names no recording, an unreadable list, or a list
        line with more than two fields or a hypnogram after a pattern.
    """
    found: list[tuple[Path, Path | None]] = []
    for spec in inputs:
        if spec.startswith(LIST_PREFIX):
            found += _read_list(spec)
        elif is_pattern(spec):
            found += [(p, None) for p in _expand_glob(spec, spec)]
        elif Path(spec).is_dir():
            found += [(p, None) for p in _expand_folder(Path(spec))]
        else:
            found.append((Path(spec), None))
    seen: set[Path] = set()
    unique: list[tuple[Path, Path | None]] = []
    for rec, hyp in found:
        key = rec.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((key, hyp.resolve() if hyp is not None else None))
    return unique


def pair_hypnogram(recording: Path) -> tuple[Path | None, str]:
    """The hypnogram that pairs with ``recording`` by the module's rule, and a problem.

    Parameters
    ----------
    recording : Path
        The recording file.

    Returns
    -------
    hypnogram : Path or None
        The one file that pairs with it; None when none or several do.
    problem : str
        Empty, or the night's one-line problem when several files pair with it.
    """
    folder = recording.parent
    if not folder.is_dir():
        return None, ""
    m = _SLEEP_EDF_PSG.match(recording.name)
    if m:
        prefix = m.group(1).lower()
        hits = [p for p in folder.iterdir()
                if p.name.lower().startswith(prefix) and p.name.lower().endswith("-hypnogram.edf")]
    else:
        stem = recording.stem.lower()
        names = tuple(f"{stem}{sep}hypnogram." for sep in _GENERIC_HYPNOGRAM_SEPARATORS)
        hits = [p for p in folder.iterdir() if p.is_file() and p.name.lower().startswith(names)]
    hits = sorted(hits)
    if len(hits) > 1:
        return None, f"{len(hits)} hypnograms pair with it ({', '.join(p.name for p in hits)}); name one in an @list file"
    return (hits[0], "") if hits else (None, "")


def _output_names(recordings: list[Path]) -> list[str]:
    """A unique output stem per recording: its own stem, or ``<folder>_<stem>`` where two
    recordings share a stem."""
    stems = [r.stem for r in recordings]
    names = [s if stems.count(s) == 1 else f"{r.parent.name}_{s}" for r, s in zip(recordings, stems)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        clash = [str(r) for r, n in zip(recordings, names) if n == dupes[0]]
        raise SleepstreamError(f"{' and '.join(clash)}: two recordings would write the same outputs "
                               f"'{dupes[0]}_stages.csv'; list them from different folder names")
    return names


def find_nights(inputs: list[str], hypnogram: str | None = None) -> list[NightInput]:
    """The nights an archive run scores.

    Parameters
    ----------
    inputs : list of str
        Recording paths, folders, glob patterns and ``@FILE`` lists (module docstring).
    hypnogram : str, optional
        The hypnogram of the one recording the inputs name (``--hypnogram``); an error
        when they name several.

    Returns
    -------
    list of NightInput
        One per distinct recording, in input order, each with its hypnogram where one
        pairs with it (the module's pairing rule) and a unique output name.

    Raises
    ------
    SleepstreamError
        A pattern, folder or list that names no recording, an unreadable list, two
        recordings that would write the same outputs, or ``hypnogram`` with several
        recordings.
    """
    found = expand_inputs(inputs)
    if hypnogram is not None:
        if len(found) != 1:
            raise SleepstreamError(f"{parameter('hypnogram')}={hypnogram}: names the hypnogram of one recording, "
                                   f"but the inputs "
                                   f"name {len(found)}; pair them by name or in an @list file instead")
        found = [(found[0][0], Path(hypnogram).resolve())]
    names = _output_names([r for r, _ in found])
    nights = []
    for (rec, hyp), name in zip(found, names):
        problem = ""
        if hyp is None:
            hyp, problem = pair_hypnogram(rec)
        nights.append(NightInput(recording=rec, hypnogram=hyp, name=name, problem=problem))
        log.debug("night %s: %s with hypnogram %s", name, rec, hyp)
    return nights
