#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Checks that the code quoted in doc/*.md and README.md still exists in samples/.

A quoted block is a fenced ```cpp block whose previous non-blank line is
`<!-- quote: samples/<file>.cpp -->`. The block's lines must appear, in order
and contiguously, in that file (the block may be dedented as a whole).
Exit status 1 lists the stale quotes. Usage: doc/check_quotes.py [repo root]
"""
import pathlib
import re
import sys

QUOTE = re.compile(r"<!--\s*quote:\s*(\S+)\s*-->")


def blocks(md_text):
    lines = md_text.splitlines()
    source = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = QUOTE.search(line)
        if m:
            source = m.group(1)
        elif line.lstrip().startswith("```"):
            fence_indent = len(line) - len(line.lstrip())
            end = i + 1
            while end < len(lines) and not lines[end].lstrip().startswith("```"):
                end += 1
            if source:
                yield i + 1, source, [l[fence_indent:] for l in lines[i + 1 : end]]
            source = None
            i = end
        elif line.strip():
            source = None
        i += 1


def found(block, text):
    file_lines = [l.rstrip() for l in text.splitlines()]
    block = [l.rstrip() for l in block]
    if not block:
        return True
    for start in range(len(file_lines) - len(block) + 1):
        first = file_lines[start]
        if not first.endswith(block[0]) or first[: len(first) - len(block[0])].strip():
            continue
        indent = len(first) - len(block[0])
        if all(
            (f == "" and b == "") or (f[:indent].strip() == "" and f[indent:] == b)
            for f, b in zip(file_lines[start : start + len(block)], block)
        ):
            return True
    return False


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    stale = 0
    count = 0
    for md in sorted((root / "doc").glob("*.md")) + [root / "README.md"]:
        for line_no, source, block in blocks(md.read_text()):
            count += 1
            path = root / source
            if not path.is_file() or not found(block, path.read_text()):
                stale += 1
                print(f"{md.relative_to(root)}:{line_no}: quote not found in {source}")
    print(f"{count} quotes checked, {stale} stale")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
