"""The user's documentation: the README's size, every relative link resolving, and the site building strictly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 12_000
# [text](target) in Markdown; images too. Targets with a scheme or only an anchor are not files.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(markdown: Path) -> list[tuple[str, Path]]:
    """(link as written, the file it points at) for every relative link in a Markdown file."""
    links = []
    text = re.sub(r"```.*?```", "", markdown.read_text(encoding="utf-8"), flags=re.S)  # not in code blocks
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        links.append((target, (markdown.parent / target.split("#", 1)[0]).resolve()))
    return links


def test_readme_fits_its_size_limit():
    size = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert size <= README_LIMIT, f"README.md is {size:,} characters; the limit is {README_LIMIT:,}"


@pytest.mark.parametrize("markdown", [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(markdown):
    broken = [target for target, path in relative_links(markdown) if not path.exists()]
    assert not broken, f"{markdown.relative_to(ROOT)} links to missing files: {broken}"


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("x")
    page.write_text("[ok](there.md#a) [web](https://example.org) [gone](missing.md)\n```\n[code](nowhere.md)\n```\n")
    assert [t for t, p in relative_links(page) if not p.exists()] == ["missing.md"]


def test_every_docs_page_is_in_the_site_navigation():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").glob("**/*.md"))
    assert [p for p in pages if p not in config] == []


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        try:
            import mkdocs  # noqa: F401
        except ImportError:
            pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    try:
        import material  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (site / "index.html").is_file() and (site / "reference" / "index.html").is_file()
    # The API reference was generated from the docstrings, not left as the `::: digitlab...` directives.
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    assert "load_dataset" in reference and ":::" not in reference
