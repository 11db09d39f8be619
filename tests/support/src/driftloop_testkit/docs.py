"""The steps a document marks for its test: shell blocks after ``<!-- quickstart-test -->``.

    from driftloop_testkit.docs import QUICKSTART, marked_steps

    steps = marked_steps(QUICKSTART.read_text())

A marked block runs as written; the test may only rewrite what :func:`rewrite` lists.
"""

from __future__ import annotations

import re

from driftloop_testkit.cluster import REPO

QUICKSTART = REPO / "docs" / "quickstart.md"
MARKER = "<!-- quickstart-test -->"
#: The marker on a line of its own (prose may mention it inline).
_MARK = re.compile("^" + re.escape(MARKER) + "$", re.M)
_BLOCK = re.compile("^" + re.escape(MARKER) + r"\n```(?:sh|bash)\n(.*?)```", re.S | re.M)


def marked_steps(markdown: str) -> list[str]:
    """The body of each ```sh block that directly follows the marker, in order."""
    steps = _BLOCK.findall(markdown)
    if len(_MARK.findall(markdown)) != len(steps):
        raise ValueError(f"a {MARKER} is not directly followed by a ```sh block")
    return [str(step) for step in steps]


def rewrite(script: str, replacements: dict[str, str]) -> str:
    """``script`` with each key replaced by its value; every key must occur (a doc edit
    that removes one fails the test instead of silently running something else)."""
    for old, new in replacements.items():
        if old not in script:
            raise ValueError(f"{old!r} is not in the quickstart's steps any more")
        script = script.replace(old, new)
    return script
