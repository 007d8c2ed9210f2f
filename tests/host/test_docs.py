"""The documentation holds together: README.md stays a short guide, every relative link in it and in docs/
resolves (files and #anchors), and every fenced code block names, on the line before its fence, the tests that
run it (`<!-- tested by: NODE-ID ... -->`), each of which exists.
"""

import ast
import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_MAX_LINES = 300
PAGES = ["README.md"] + sorted(os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^\s*(```|~~~)")
TESTED_BY = re.compile(r"^\s*<!-- tested by: (.+?) -->\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = ("http://", "https://", "mailto:")


def read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def prose_lines(text):
    """(number, line) of the lines outside fenced code blocks."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield number, line


def slug(heading):
    """The anchor a heading gets on GitHub: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page):
    return {slug(line.lstrip("#")) for _, line in prose_lines(read(page)) if re.match(r"^#{1,6} ", line)}


def code_blocks(text):
    """(line number of the opening fence, the line before it) of every fenced block."""
    lines = text.splitlines()
    inside = False
    for index, line in enumerate(lines):
        if FENCE.match(line):
            if not inside:
                yield index + 1, lines[index - 1] if index else ""
            inside = not inside


def collected_tests():
    """Node ids (without parameters) of every test function in tests/, from the files' syntax trees."""
    ids = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "**", "test_*.py"), recursive=True):
        relative = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                ids.add("%s::%s" % (relative, node.name))
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                        ids.add("%s::%s::%s" % (relative, node.name, item.name))
    return ids


def test_readme_is_a_short_guide():
    lines = read("README.md").splitlines()
    assert len(lines) <= README_MAX_LINES, "README.md has %d lines; move reference material to docs/" % len(lines)


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    broken = []
    for number, line in prose_lines(read(page)):
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL):
                continue
            path, _, anchor = target.partition("#")
            linked = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(os.path.join(ROOT, linked)):
                broken.append("%s:%d: %s (no file %s)" % (page, number, target, linked))
            elif anchor and (not linked.endswith(".md") or anchor not in anchors(linked)):
                broken.append("%s:%d: %s (no heading #%s in %s)" % (page, number, target, anchor, linked))
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_names_tests_that_exist(page):
    known = collected_tests()
    problems = []
    for number, before in code_blocks(read(page)):
        marker = TESTED_BY.match(before)
        if marker is None:
            problems.append("%s:%d: no <!-- tested by: ... --> line before the fence" % (page, number))
            continue
        for node_id in marker.group(1).split():
            if node_id.split("[", 1)[0] not in known:
                problems.append("%s:%d: no test %s" % (page, number, node_id))
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The helpers above find a fence without a marker, headings' anchors, and only real test names."""
    text = "# A `title`, here\n\n<!-- tested by: x -->\n```sh\n# not a heading\n```\n\n```\nbare\n```\n"
    assert [before for _, before in code_blocks(text)] == ["<!-- tested by: x -->", ""]
    assert slug(" A `title`, here") == "a-title-here"
    assert [number for number, _ in prose_lines(text)] == [1, 2, 3, 7]
    known = collected_tests()
    assert "tests/host/test_docs.py::test_readme_is_a_short_guide" in known
    assert "tests/host/test_docs.py::no_such_test" not in known


def test_make_targets_exist():
    """The make targets the docs name run what the docs say they run."""
    for target, command in (("demo", "xmpp-lite demo"), ("test", "-m pytest"), ("test-cpython", "pytest tests/device"),
                            ("test-micropython", "tests/mp_runner.py"), ("bench", "tests/bench/bench_"),
                            ("soak", "-m slow"), ("clean", "rm -rf")):
        result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and command in result.stdout, result.stdout + result.stderr
