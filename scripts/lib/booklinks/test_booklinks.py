"""The link checker on books it must accept and books it must reject."""

import os
import tempfile
import unittest

from booklinks import broken_links


def book(pages):
    root = tempfile.mkdtemp()
    for name, html in pages.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(html)
    return root


class BookLinksTest(unittest.TestCase):
    def test_a_sound_book_passes(self):
        root = book({
            "index.html": '<a href="api.html#errors">e</a><a href="ops/run.html">r</a><a href="https://example.org/x">x</a><img src="images/a.png">',
            "api.html": '<h2 id="errors">Errors</h2><a href="#errors">self</a>',
            "ops/run.html": '<a href="../api.html">up</a>',
            "images/a.png": "",
        })
        self.assertEqual(broken_links(root), [])

    def test_what_it_must_reject(self):
        root = book({
            "index.html": '<a href="nope.html">a</a><a href="api.html#gone">b</a><a href="#here">c</a><a href="../../etc/passwd">d</a><img src="images/missing.png">',
            "api.html": '<h2 id="errors">Errors</h2>',
        })
        whys = sorted((link, why) for _, link, why in broken_links(root))
        self.assertEqual(
            whys,
            [
                ("#here", "no such anchor"),
                ("../../etc/passwd", "leaves the book"),
                ("api.html#gone", "no such anchor"),
                ("images/missing.png", "no such page"),
                ("nope.html", "no such page"),
            ],
        )


if __name__ == "__main__":
    unittest.main()
