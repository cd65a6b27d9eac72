"""Checks the links of the rendered book (docs/book, from `mdbook build`):
every link to a page of the book must name a page that exists, and every
`#anchor` an id on that page. Reading the rendered HTML, not the Markdown,
checks the anchors mdBook actually made. Links that leave the book
(http:, mailto:) are not followed: the machines this runs on have no
network.

  python3 -m booklinks docs/book
"""

import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urlparse


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.links.append(attrs["src"])


def _parse(path):
    page = _Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def broken_links(book):
    """[(page, link, why)] for every broken internal link under `book`."""
    book = os.path.abspath(book)
    pages = {}
    for root, _, files in os.walk(book):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(root, name)
                pages[path] = _parse(path)
    broken = []
    for path, page in sorted(pages.items()):
        # mdBook's own navigation pages are generated, not written.
        if os.path.basename(path) in ("print.html", "toc.html", "404.html"):
            continue
        for link in page.links:
            if urlparse(link).scheme or link.startswith("//"):
                continue
            target, anchor = urldefrag(link)
            file = os.path.normpath(os.path.join(os.path.dirname(path), unquote(target))) if target else path
            rel = os.path.relpath(path, book)
            if not file.startswith(book + os.sep) and file != book:
                broken.append((rel, link, "leaves the book"))
            elif not os.path.exists(file):
                broken.append((rel, link, "no such page"))
            elif anchor and file.endswith(".html") and anchor not in pages[file].ids:
                broken.append((rel, link, "no such anchor"))
    return broken


def main(argv):
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        print("usage: python3 -m booklinks RENDERED_BOOK_DIR", file=sys.stderr)
        return 2
    broken = broken_links(argv[0])
    for page, link, why in broken:
        print(f"book: {page}: {link}: {why}", file=sys.stderr)
    return 1 if broken else 0
