"""No table of the documentation is wider than its page's text column, at 1280 px or on a 420 px phone.

The layout is one that cannot overflow: ``docs/_static/custom.css`` (linked from
``docs/conf.py``) lets every table cell wrap, anywhere if it must, so a table's
minimum width is a few characters and it always fits its column; the theme's
table wrapper scrolls sideways should anything still not fit. What would defeat
it, and what these tests catch on the built site:

* a page that does not load ``custom.css``;
* a rule whose selector no longer reaches every table, or every cell (a theme
  update that renames classes, a selector narrowed to one page);
* a code block inside a table cell: wrapped code in a narrow column cannot be
  read (the asyncio page had two side by side, cut off at 1280 px and hidden on
  a phone). Put code blocks one after the other instead.

The site is built once per session (about 7 s) with the same Sphinx as
``scripts/test.sh``, into a temporary directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CSS = DOCS / "_static" / "custom.css"

# Each declaration that keeps tables inside their column, and the elements it must reach on every page.
REQUIRED = {
    ("max-width", "100%"): "table",
    ("overflow-wrap", "anywhere"): "table td, table th",
    ("white-space", "normal"): "table span.pre",
}


def _rules(css: str) -> list[tuple[str, dict[str, str]]]:
    """``(selector list, {property: value})`` for each rule of a plain stylesheet (no @media nesting)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    rules: list[tuple[str, dict[str, str]]] = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for declaration in body.split(";"):
            name, _, value = declaration.partition(":")
            if value:
                declarations[name.strip()] = value.strip()
        rules.append((" ".join(selectors.split()), declarations))
    return rules


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation, built into a temporary directory."""
    out = tmp_path_factory.mktemp("docs_html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def _pages(site: Path) -> list[Path]:
    pages = [p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_")]
    assert len(pages) > 5, pages
    return sorted(pages)


def _soup(page: Path) -> BeautifulSoup:
    return BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")


def test_conf_links_the_stylesheet() -> None:
    """docs/conf.py serves docs/_static/ and adds custom.css to every page."""
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert re.search(r'^html_static_path = \["_static"\]$', conf, re.MULTILINE)
    assert re.search(r'^html_css_files = \[.*"custom\.css".*\]$', conf, re.MULTILINE)


def test_every_page_loads_the_stylesheet(site: Path) -> None:
    """Every built page links _static/custom.css, and the built copy is the one in docs/."""
    assert (site / "_static" / "custom.css").read_text(encoding="utf-8") == CSS.read_text(encoding="utf-8")
    for page in _pages(site):
        links = [str(link.get("href", "")) for link in _soup(page).find_all("link", rel="stylesheet")]
        assert any(re.search(r"(^|/)_static/custom\.css(\?|$)", href) for href in links), (page, links)


def test_the_rules_reach_every_table_and_cell(site: Path) -> None:
    """Each rule that keeps a table in its column selects every table (or cell, or literal) of every page."""
    rules = _rules(CSS.read_text(encoding="utf-8"))
    checked = 0
    for (prop, value), targets in REQUIRED.items():
        selectors = [selector for selector, body in rules if body.get(prop) == value]
        assert selectors, f"custom.css has no rule with {prop}: {value}"
        for page in _pages(site):
            soup = _soup(page)
            wanted = soup.select(targets)
            reached = {id(node) for selector in selectors for node in soup.select(selector)}
            missed = [node for node in wanted if id(node) not in reached]
            assert not missed, f"{page.name}: {prop}: {value} misses {str(missed[0])[:200]}"
            checked += len(wanted)
    assert checked > 0, "no table found: the check checked nothing"


def test_no_code_block_in_a_table(site: Path) -> None:
    """No table cell holds a code block (put examples one after the other, not side by side)."""
    for page in _pages(site):
        for table in _soup(page).find_all("table"):
            assert isinstance(table, Tag)
            for cell in table.find_all(["td", "th"]):
                assert cell.find("pre") is None, (
                    f"{page.relative_to(site)}: a code block in a table cell: {cell.get_text()[:120]!r}"
                )
