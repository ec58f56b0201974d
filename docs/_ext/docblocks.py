"""The code-block convention of the documentation, in one place (docs/contributing.md).

A fenced code block in a page (or in the README) that a reader could run, written in
``python`` or ``console``, carries a marker on the line right above its fence:

* ``<!-- run -->``: ``tests/test_docs.py`` runs it. A ``python`` block is executed as a
  script; a ``console`` block's lines that start with ``$ `` are commands (a line ending
  with ``\\`` goes on on the next one), the lines after a command are output the command
  must print (each one a part of a line it prints; ``...`` stands for lines left out).
  The blocks of one page run in order in one empty folder, so a later block may use the
  files an earlier one wrote; ``../shared/data`` there is the project's shared data.
* ``<!-- not-run: REASON -->``: not run by the tests, for the REASON the page shows
  (it needs an amplifier, LSL, the network, or minutes of CPU).

The documentation build turns each marker into a visible line above its block (see
``sleepstream_docs.py``). This module only reads Markdown; it imports nothing of Sphinx.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: languages of blocks that read as something to run: each needs a marker.
RUNNABLE_LANGUAGES = frozenset({"python", "py", "console", "bash", "sh", "shell", "shell-session", "pycon"})
#: languages a ``<!-- run -->`` block may have.
RUN_LANGUAGES = frozenset({"python", "console"})

MARKER = re.compile(r"^\s*<!--\s*(?P<kind>run|not-run)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s{0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown file.

    Attributes
    ----------
    path : pathlib.Path
        The file it is in.
    line : int
        1-based line number of its opening fence.
    language : str
        The first word of the fence's info string (``""`` when none; ``"{directive}"``
        for a MyST directive).
    text : str
        Its content, without the fences.
    marker : str or None
        ``"run"``, ``"not-run"`` or None when the line above the fence is no marker.
    reason : str
        Why a ``not-run`` block is not run (empty otherwise).
    """

    path: Path
    line: int
    language: str
    text: str
    marker: str | None = None
    reason: str = ""

    @property
    def where(self) -> str:
        """``file:line`` of the opening fence, for messages."""
        return f"{self.path}:{self.line}"


@dataclass
class ConsoleCommand:
    """One ``$ `` command of a console block and the output lines it must print."""

    command: str
    expected: list[str] = field(default_factory=list)


def read_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced code block of the Markdown file ``path``, with its marker.

    Parameters
    ----------
    path : pathlib.Path
        A Markdown file.

    Returns
    -------
    list of CodeBlock
        In the order of the file; blocks nested in a MyST directive's fence are included.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return _blocks_in(Path(path), lines, 0)


def _blocks_in(path: Path, lines: list[str], offset: int) -> list[CodeBlock]:
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) \
                    and not close["info"].strip():
                break
            body.append(lines[i])
            i += 1
        i += 1
        language = info.split()[0] if info else ""
        marker, reason = _marker_above(lines, start)
        blocks.append(CodeBlock(path, offset + start + 1, language, "\n".join(body), marker, reason))
        if language.startswith("{"):  # a MyST directive: its content may hold fences of its own
            blocks.extend(_blocks_in(path, body, offset + start + 1))
    return blocks


def _marker_above(lines: list[str], fence_index: int) -> tuple[str | None, str]:
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None, ""
    m = MARKER.match(lines[j])
    if not m:
        return None, ""
    return m["kind"], (m["reason"] or "").strip()


def console_commands(text: str) -> list[ConsoleCommand]:
    """The commands of a console block, each with the output lines shown after it.

    Parameters
    ----------
    text : str
        The block's content.

    Returns
    -------
    list of ConsoleCommand
        Output lines are kept stripped, empty ones dropped; a command continued with a
        trailing backslash is joined into one line.
    """
    commands: list[ConsoleCommand] = []
    continuing = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if continuing:
            commands[-1].command = commands[-1].command[:-1].rstrip() + " " + line.strip()
        elif line.startswith("$ "):
            commands.append(ConsoleCommand(line[2:].strip()))
        elif line.strip() and commands:
            commands[-1].expected.append(line.strip())
        continuing = bool(commands) and commands[-1].command.endswith("\\") and not commands[-1].expected
    return commands


def problems(block: CodeBlock) -> list[str]:
    """What breaks the convention in one block (empty when nothing).

    Parameters
    ----------
    block : CodeBlock
        A block read by :func:`read_blocks`.

    Returns
    -------
    list of str
        One line each, starting with the block's ``file:line``.
    """
    out = []
    if not block.language:
        out.append(f"{block.where}: a code block needs a language (``text`` for plain text)")
    if block.language in RUNNABLE_LANGUAGES and block.marker is None:
        out.append(f"{block.where}: a {block.language} block needs <!-- run --> or <!-- not-run: REASON --> above it")
    if block.marker == "run" and block.language not in RUN_LANGUAGES:
        out.append(f"{block.where}: only python and console blocks can be run (this one is {block.language!r})")
    if block.marker == "run" and block.language == "console" and not console_commands(block.text):
        out.append(f"{block.where}: a console block to run needs at least one '$ ' command")
    if block.marker == "not-run" and not block.reason:
        out.append(f"{block.where}: <!-- not-run --> needs a reason: <!-- not-run: needs an LSL amplifier -->")
    return out
