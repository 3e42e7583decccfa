#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Instructions per iteration of one benchmark, from two callgrind profiles.

Google Benchmark 1.7 takes no fixed iteration count on the command line, and
its calibration runs and the process's start-up would spoil a plain
"total / iterations". So run the same benchmark twice under callgrind, with a
short and a longer --benchmark_min_time, and count the calls of a function
that runs once per iteration: the difference in instructions over the
difference in calls is the cost of one iteration, start-up and calibration
cancelled out.

  for t in 0.01 0.1; do
    valgrind --tool=callgrind --callgrind-out-file=cg.$t build/bench/bench_coroutine \\
        --benchmark_filter='^BM_Coroutine_Lifecycle/kaa$' --benchmark_min_time=$t
  done
  scripts/callgrind_ir.py 'kaa::detail::start_coroutine(' cg.0.01 cg.0.1

prints "<Ir per iteration> <iterations counted>". The marker matches the
start of a function's name as callgrind records it (demangled).
"""
import re
import sys

NAME = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")


def profile(path, marker):
    """(total instructions, calls of the marker) of one callgrind file."""
    names = {}
    total = None
    calls = 0
    into_marker = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = NAME.match(line.rstrip("\n"))
            if m:
                if m.group(2) is not None:
                    names[m.group(1)] = m.group(2)
                into_marker = line.startswith("cfn=") and names.get(m.group(1), "").startswith(marker)
            elif line.startswith("calls="):
                if into_marker:
                    calls += int(line.split()[0][len("calls="):])
            else:
                if line.startswith(("totals:", "summary:")):
                    total = int(line.split()[1])
                into_marker = False
    if total is None:
        sys.exit("callgrind_ir.py: no totals in %s" % path)
    return total, calls


def main():
    marker, short, long_ = sys.argv[1:4]
    ir0, n0 = profile(short, marker)
    ir1, n1 = profile(long_, marker)
    if n1 <= n0:
        sys.exit("callgrind_ir.py: the longer run did not call %r more often (%d, %d)" % (marker, n0, n1))
    print("%.1f %d" % ((ir1 - ir0) / (n1 - n0), n1 - n0))


if __name__ == "__main__":
    main()
