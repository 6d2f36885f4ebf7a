"""Every relative link in README.md and docs/*.md points at a file that exists and, when it
names an anchor, at a heading of that file (GitHub's anchor rules)."""
import glob
import os
import re

import pytest

from tests.conftest import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading):
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    seen = {}
    out = set()
    in_code = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
            if in_code or not line.startswith("#"):
                continue
            slug = _slug(line.lstrip("#"))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else "{}-{}".format(slug, n))
    return out


def _documents():
    return [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))


@pytest.mark.parametrize("doc", _documents(), ids=os.path.basename)
def test_relative_links_resolve(doc):
    text = open(doc, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(full):
            broken.append("{} (no such file)".format(target))
        elif anchor and full.endswith(".md") and anchor not in _anchors(full):
            broken.append("{} (no such heading)".format(target))
    assert not broken, "{}: broken links: {}".format(os.path.relpath(doc, REPO), ", ".join(broken))


def test_readme_is_a_front_page():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        lines = f.readlines()
    assert len(lines) <= 250, "README.md has {} lines: move reference text to docs/".format(len(lines))
