"""Checks that a built documentation site renders its formulas without a network.

Run after `mkdocs build`:

    python .ci/check_site_offline.py SITE_DIR

Fails (exit 1, one line per problem) when

- a page loads a script or a style sheet from another host (`<script src>`,
  `<link rel="stylesheet" href>` or `<link rel="preload"|"modulepreload" href>`
  with an `http(s)://` or `//` address): the site would then need a network;
- any page names a MathJax or KaTeX address on another host, even in inline
  code;
- the bundled MathJax (its script, its fonts, its licence) is missing from the
  site, or a page with formulas does not load it from there.

Plain links (`<a href>`) to other sites are fine. Standard library only.
"""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin
from urllib.parse import urlparse

MATHJAX_DIR = "javascripts/vendor/mathjax"
MATHJAX_SCRIPT = f"{MATHJAX_DIR}/tex-chtml-full.js"
MATHJAX_FONTS = f"{MATHJAX_DIR}/output/chtml/fonts/woff-v2"
MATHJAX_FONT_COUNT = 23  # the .woff files of MathJax 3's TeX fonts
REMOTE_MATH = re.compile(r"(?:https?:)?//[^\s\"'<>]*(?:mathjax|katex)", re.IGNORECASE)
# Markup of a page whose formulas MathJax must typeset: pymdownx.arithmatex
# (Markdown pages) and the Markdown cells of the notebooks.
MATH_MARKUP = re.compile(r'class="arithmatex"|\$\$|\\\(|\\\[')


class _Resources(HTMLParser):
    """Collects the addresses of the scripts and style sheets of one page."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            rel = (attrs.get("rel") or "").lower().split()
            if {"stylesheet", "preload", "modulepreload"} & set(rel):
                self.urls.append(attrs["href"])


def _is_remote(url: str) -> bool:
    return url.startswith("//") or urlparse(url).scheme in ("http", "https")


def _local_target(site: Path, page: Path, url: str) -> Path:
    """The file a relative address of a page points at."""
    page_url = page.relative_to(site).as_posix()
    path = urlparse(urljoin(page_url, url)).path
    return site / path.lstrip("/")


def check_site(site: Path) -> list[str]:
    problems = []
    for name in (MATHJAX_SCRIPT, f"{MATHJAX_DIR}/LICENSE"):
        if not (site / name).is_file():
            problems.append(f"{name}: missing from the site")
    fonts = sorted((site / MATHJAX_FONTS).glob("*.woff"))
    if len(fonts) != MATHJAX_FONT_COUNT:
        problems.append(
            f"{MATHJAX_FONTS}: {len(fonts)} .woff files, {MATHJAX_FONT_COUNT} expected"
        )
    pages = sorted(site.rglob("*.html"))
    if not pages:
        problems.append(f"{site}: no HTML pages (was the site built?)")
    math_pages = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        where = page.relative_to(site).as_posix()
        parser = _Resources()
        parser.feed(text)
        for url in parser.urls:
            if _is_remote(url):
                problems.append(f"{where}: loads {url} from another host")
        for url in sorted(set(REMOTE_MATH.findall(text))):
            problems.append(f"{where}: names the remote math renderer {url}")
        if MATH_MARKUP.search(text):
            math_pages += 1
            local = [
                url
                for url in parser.urls
                if not _is_remote(url)
                and urlparse(url).path.endswith(MATHJAX_SCRIPT)
                and _local_target(site, page, url).is_file()
            ]
            if not local:
                problems.append(
                    f"{where}: has formulas but does not load {MATHJAX_SCRIPT}"
                )
    if pages and not math_pages:
        problems.append("no page has formulas: the check found nothing to check")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} SITE_DIR", file=sys.stderr)
        return 2
    site = Path(argv[1])
    problems = check_site(site)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{site}: no remote scripts or style sheets; MathJax is bundled")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
