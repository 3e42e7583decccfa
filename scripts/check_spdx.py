#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Every source, header, script and CMake file starts with its SPDX line.

    python3 scripts/check_spdx.py [ROOT]

The line is `// SPDX-License-Identifier: BSL-1.0` in C++ files and
`# SPDX-License-Identifier: BSL-1.0` in CMake, Python, shell and Makefile-style
files (debian/rules). It is the first line, or the second after a `#!` line.
Files are those git knows in ROOT (tracked, plus untracked ones that are not
ignored, so a new file is caught before it is committed); outside a git
checkout (an unpacked source tarball) the tree is walked instead, build
directories left out. Exits 1 and lists the files without the line.
"""

import os
import subprocess
import sys

LICENSE = "BSL-1.0"
CXX_SUFFIXES = (".cpp", ".hpp", ".h", ".cc", ".ipp")
HASH_SUFFIXES = (".cmake", ".cmake.in", ".py", ".sh", ".pc.in")
HASH_NAMES = ("CMakeLists.txt", "rules")  # rules: debian/rules
SKIP_DIRS = (".git", ".cache")


def comment_of(path):
    """The comment leader the SPDX line uses in `path`, or None if not checked."""
    name = os.path.basename(path)
    if name.endswith(CXX_SUFFIXES):
        return "//"
    if name.endswith(HASH_SUFFIXES) or name in HASH_NAMES:
        if name == "rules" and os.path.basename(os.path.dirname(path)) != "debian":
            return None
        return "#"
    # An extensionless script (.ci/run): a shebang says it is one.
    if "." not in name:
        try:
            with open(path, "rb") as f:
                if f.read(2) == b"#!":
                    return "#"
        except OSError:
            return None
    return None


def candidate_files(root):
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
        return [f for f in files if os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames
                       if d not in SKIP_DIRS and not (rel == "." and d.startswith(("build", "obj-")))
                       and not (rel == "debian" and not d.startswith("source"))]
        for name in filenames:
            files.append(os.path.normpath(os.path.join(rel, name)))
    return files


def has_spdx(path, leader):
    expected = f"{leader} SPDX-License-Identifier: {LICENSE}"
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\r\n")
        if first.startswith("#!"):
            first = f.readline().rstrip("\r\n")
    return first == expected


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    root = os.path.abspath(root)
    checked, missing = 0, []
    for rel in sorted(candidate_files(root)):
        path = os.path.join(root, rel)
        leader = comment_of(path)
        if leader is None:
            continue
        checked += 1
        if not has_spdx(path, leader):
            missing.append(f"{rel}: first line (after any #!) must be "
                           f"'{leader} SPDX-License-Identifier: {LICENSE}'")
    if missing:
        print(f"check_spdx: {len(missing)} of {checked} files lack the SPDX line:", file=sys.stderr)
        for line in missing:
            print("  " + line, file=sys.stderr)
        return 1
    print(f"check_spdx: all {checked} source, script and CMake files carry "
          f"SPDX-License-Identifier: {LICENSE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
