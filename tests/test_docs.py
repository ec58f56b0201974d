"""The documentation: every code block a reader could run says whether it is run, the ones
marked ``<!-- run -->`` run and print what they show, and the site builds with warnings as
errors (docs/contributing.md has the convention; docs/_ext/docblocks.py reads it)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(DOCS / "_ext"))

import docblocks  # noqa: E402

# Pages whose every runnable-looking block must carry a marker: the documentation's and the README.
MARKED_FILES = sorted(p for p in DOCS.rglob("*.md")
                      if not {"_build", "generated"} & set(p.relative_to(DOCS).parts)) + [REPO / "README.md"]
RUN_FILES = MARKED_FILES
PAGES_TO_RUN = [p for p in RUN_FILES if any(b.marker == "run" for b in docblocks.read_blocks(p))]
BLOCK_TIMEOUT_S = 300


def test_every_runnable_looking_block_is_marked():
    found = [problem for page in MARKED_FILES for block in docblocks.read_blocks(page)
             for problem in docblocks.problems(block)]
    assert not found, "\n".join(found)
    assert PAGES_TO_RUN, "no page has a block marked <!-- run -->"


def test_block_reader_finds_markers_reasons_and_nested_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("\n".join([
        "# A page", "",
        "<!-- run -->", "```console", "$ sleepstream simulate --hours 1 \\", "    --out n.edf",
        "n.edf: 120 epochs", "...", "$ ls", "```", "",
        "<!-- not-run: needs an amplifier -->", "", "```python", "import pylsl", "```",
        "```python", "print('unmarked')", "```",
        "<!-- not-run -->", "```console", "$ sleepstream live", "```",
        "````{note}", "```bash", "echo nested", "```", "````",
        "```", "no language", "```",
        "<!-- run -->", "```toml", "[gate]", "```",
    ]), encoding="utf-8")
    blocks = docblocks.read_blocks(page)
    assert [(b.language, b.marker, b.line) for b in blocks] == [
        ("console", "run", 4), ("python", "not-run", 14), ("python", None, 17), ("console", "not-run", 21),
        ("{note}", None, 24), ("bash", None, 25), ("", None, 29), ("toml", "run", 33)]
    assert blocks[1].reason == "needs an amplifier"
    commands = docblocks.console_commands(blocks[0].text)
    assert [c.command for c in commands] == ["sleepstream simulate --hours 1 --out n.edf", "ls"]
    assert commands[0].expected == ["n.edf: 120 epochs", "..."]
    problems = [p for b in blocks for p in docblocks.problems(b)]
    assert len(problems) == 5, problems   # unmarked python, not-run without reason, unmarked bash,
    for line in (":17:", ":21:", ":25:", ":29:", ":33:"):   # a block without language, a toml "run"
        assert any(line in p for p in problems), (line, problems)


def test_every_command_has_its_section_on_the_command_line_page():
    from sleepstream.cli import COMMANDS

    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"```{{command-help}} {name}\n" not in text]
    assert not missing, f"docs/reference/cli.md has no section for: {missing}"


def _github_anchor(heading: str) -> str:
    """The anchor a code host (GitHub) gives a Markdown heading: code marks and punctuation
    dropped, lower case, spaces as hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_readme_is_short_and_its_links_resolve():
    """The README is the short one, and its relative links (read from the repository root, as a
    code host reads them) name files that exist and headings those files have."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    targets = re.findall(r"\]\(([^)#]+)(#[^)]*)?\)", text)
    local = [(path, anchor) for path, anchor in targets if "://" not in path]
    assert local, "the README links no page"
    missing = [path for path, _ in local if not (REPO / path).exists()]
    assert not missing, f"links to nothing: {missing}"
    bad_anchors = []
    for path, anchor in local:
        if anchor and path.endswith(".md"):
            page = (REPO / path).read_text(encoding="utf-8")
            headings = {_github_anchor(m) for m in re.findall(r"^#+ (.+)$", page, re.M)}
            if anchor[1:] not in headings:
                bad_anchors.append(path + anchor)
    assert not bad_anchors, f"links to headings that are not there: {bad_anchors}"


def test_github_anchor_matches_the_code_host():
    assert _github_anchor("Device streams: what to give `live`") == "device-streams-what-to-give-live"
    assert _github_anchor("Per-epoch normalised input") == "per-epoch-normalised-input"


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.lsl
@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_TO_RUN, ids=lambda p: str(p.relative_to(REPO)))
def test_marked_blocks_run(page: Path, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)   # ../shared/data from the block's folder
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               SLEEPSTREAM_DATA_DIR=str(tmp_path / "cache"), MPLBACKEND="Agg", COLUMNS="100")
    ran, skipped = 0, []
    for block in docblocks.read_blocks(page):
        if block.marker != "run":
            continue
        if "../shared/data" in block.text and not (SHARED / "data").is_dir():
            skipped.append(block.where)
            continue
        if block.language == "python":
            script = work / f"block_{block.line}.py"
            script.write_text(block.text + "\n", encoding="utf-8")
            proc = subprocess.run([sys.executable, script.name], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=BLOCK_TIMEOUT_S, check=False)
            assert proc.returncode == 0, f"{block.where}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        else:
            for command in docblocks.console_commands(block.text):
                proc = subprocess.run(["bash", "-c", command.command], cwd=work, env=env, capture_output=True,
                                      text=True, timeout=BLOCK_TIMEOUT_S, check=False)
                output = proc.stdout + proc.stderr
                assert proc.returncode == 0, f"{block.where}: `{command.command}` exit {proc.returncode}\n{output}"
                for line in command.expected:
                    if line != "...":
                        assert _squeeze(line) in _squeeze(output), \
                            f"{block.where}: `{command.command}` did not print {line!r}; it printed:\n{output}"
        ran += 1
    if skipped and not ran:
        pytest.skip(f"{SHARED / 'data'} is absent; blocks that read it: {', '.join(skipped)}")


@pytest.mark.lsl
@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    # the pages that follow the code are there and carry what the code has
    api = (out / "api" / "generated" / "sleepstream.api.html").read_text(encoding="utf-8")
    assert "StagingResult" in api and "sleep_statistics" in api
    assert (out / "api" / "generated" / "streamer.stream.html").is_file()
    for card in sorted((REPO / "weights").glob("*/MODEL_CARD.md")):
        page = (out / "models" / "generated" / f"{card.parent.name}.html").read_text(encoding="utf-8")
        assert "Model card" in page, card
    cli = (out / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "--hang-timeout" in cli and "--gate" in cli
    quick = (out / "quickstart.html").read_text(encoding="utf-8")
    assert "Not run by the tests: needs an amplifier streaming EEG over LSL." in quick
