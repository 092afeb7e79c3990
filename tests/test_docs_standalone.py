"""The project's docs stand alone: no source file points outside the repository, and every paper tag the
code cites ([P000] ...) is defined, by title, in docs/references.md."""

import re
import subprocess
from pathlib import Path

import sagin_hil

ROOT = Path(sagin_hil.__file__).parent
# Files outside the repository the code once pointed at: the workplace's reference and design notes, its
# shared folder and the plain-text paper files (NNN_<16 hex>.txt). Written with escapes so this file does
# not match itself.
OUTSIDE = re.compile(r"REFERENCE\.md|DESIGN\.md|\.\./shared|/shared/seed[s]|\b\d{3}_[0-9a-f]{16}\.txt")
TAG = re.compile(r"\[P(\d{3})\]")
SKIP_DIRS = {".venv", ".git", "build", "dist", "runs", "__pycache__"}


def _source_files() -> list[Path]:
    """Tracked and new (not ignored) *.py, *.md, *.toml files; a plain walk where git is not available."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
                              "*.py", "*.md", "*.toml"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = [p for ext in ("py", "md", "toml") for p in ROOT.rglob(f"*.{ext}")
                 if not SKIP_DIRS & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file()]


def test_the_pattern_catches_outside_references():
    for text in ("see REFERENCE" + ".md sec. 1", "DESIGN" + ".md", "../" + "shared/x", "000_000fdef3f3211d0d" + ".txt"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("docs/references.md [P000] Sec. V")


def test_no_source_file_points_outside_the_repository():
    files = _source_files()
    assert len(files) > 50  # the walk found the project
    bad = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
           for p in files for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if OUTSIDE.search(line)]
    assert not bad, "cite docs/references.md instead:\n" + "\n".join(bad)


def test_every_cited_paper_is_defined_by_title_and_the_page_is_linked():
    refs = (ROOT / "docs" / "references.md").read_text()
    defined = set(re.findall(r"^\| \[P(\d{3})\] \| [^|]{20,} \|", refs, flags=re.M))  # tag | title | ...
    assert {"000", "001", "002", "003", "004"} <= defined
    used = {m for p in _source_files() for m in TAG.findall(p.read_text(errors="replace"))}
    assert used <= defined, f"tags cited but not defined in docs/references.md: {sorted(used - defined)}"
    for title in ("hybrid bit and generative semantic communications", "Aerial semantic relay-enabled SAGIN",
                  "QoS-aware semantic communication in LEO", "SPIFF: selective preservation of image fidelity",
                  "Generative AI for space-air-ground integrated networks", "TS 38.212", "EN 302 307",
                  "TR 38.811"):
        assert title in refs, title
    assert "(references.md)" in (ROOT / "docs" / "index.md").read_text()
