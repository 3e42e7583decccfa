#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Turns Google Benchmark JSON results into kaa's ratio table (Markdown).

Usage: bench_table.py [--build-dir DIR] RESULT.json...

Pairing: a benchmark whose name has a `kaa` path component (`X/kaa/args`)
pairs with every benchmark that has the same name with another component in
that place (`X/baseline_asio_post/args`). Times are medians over the
repetitions (run with --benchmark_repetitions=N
--benchmark_report_aggregates_only=true): CPU time, or real time for
benchmarks declared UseRealTime() (their name ends in /real_time). When both
sides report items_per_second, the table shows time per item.

Only the Python 3 standard library is used.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys


ERRORS = 0  # benchmarks that reported an error (SkipWithError): the exit status says so


def load_medians(paths):
    """Returns {run_name: benchmark dict} for the median aggregates, and the
    context of the first file."""
    medians, cvs, context = {}, {}, None
    global ERRORS
    for path in paths:
        # A program whose benchmarks all fall outside --benchmark_filter
        # writes nothing.
        if os.path.getsize(path) == 0:
            continue
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for b in data.get("benchmarks", []):
            name = b.get("run_name", b["name"])
            if b.get("error_occurred"):
                print(f"error: {name}: {b.get('error_message', 'error')}", file=sys.stderr)
                ERRORS += 1
                continue
            kind = b.get("run_type")
            agg = b.get("aggregate_name")
            if kind == "aggregate" and agg == "median":
                medians[name] = b
            elif kind == "aggregate" and agg == "cv":
                cvs[name] = b
            elif kind == "iteration" and name not in medians:
                # Single run without repetitions: use it as the median.
                medians[name] = b
    return medians, cvs, context


def seconds(b):
    """The benchmark's time per iteration (or per item) in seconds, and
    whether it is per item."""
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
    real = b.get("run_name", b["name"]).endswith("/real_time")
    t = (b["real_time"] if real else b["cpu_time"]) * unit
    return t, real


def per_item(b):
    ips = b.get("items_per_second")
    return 1.0 / ips if ips else None


def fmt_time(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def cv_of(cvs, name):
    b = cvs.get(name)
    if not b:
        return None
    real = name.endswith("/real_time")
    return b["real_time"] if real else b["cpu_time"]


def pairs(medians):
    """Yields (operation, baseline label, kaa result, baseline result) in
    the order the benchmarks ran."""
    names = list(medians)
    for name in names:
        parts = name.split("/")
        if "kaa" not in parts:
            continue
        i = parts.index("kaa")
        op = "/".join(parts[:i] + parts[i + 1:])
        for other in names:
            o = other.split("/")
            if other == name or len(o) != len(parts) or o[i] == "kaa":
                continue
            if o[:i] == parts[:i] and o[i + 1:] == parts[i + 1:]:
                yield op, o[i], medians[name], medians[other]


# Counters that benchmarks report beside their time (state.counters), shown
# as rows of their own when both sides of a pair have them: name -> (label,
# unit).
COUNTERS = {
    "rss_per_coroutine": ("resident memory per coroutine", "B"),
    "create_ns_per_coroutine": ("create, per coroutine", "ns"),
    "finish_ns_per_coroutine": ("resume and finish, per coroutine", "ns"),
    "maps_per_coroutine": ("memory mappings per coroutine", ""),
}


def fmt_counter(v, unit):
    if unit == "ns":
        return fmt_time(v * 1e-9)
    if unit == "B":
        return f"{v:,.0f} B"
    return f"{v:.3g}"


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cmake_cache(build_dir):
    cache = {}
    path = os.path.join(build_dir or "", "CMakeCache.txt")
    if build_dir and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^([A-Za-z0-9_.-]+):[A-Z]+=(.*)$", line.rstrip("\n"))
                if m:
                    cache[m.group(1)] = m.group(2)
    return cache


def machine(build_dir):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ncpu = run(["nproc"]) or str(os.cpu_count())
    cache = cmake_cache(build_dir)
    cxx = cache.get("CMAKE_CXX_COMPILER", "c++")
    compiler = (run([cxx, "--version"]).splitlines() or [cxx])[0]
    flags = " ".join(
        x for x in (cache.get("CMAKE_CXX_FLAGS", ""), cache.get("CMAKE_CXX_FLAGS_RELEASE", "")) if x
    )
    boost = "unknown"
    m = re.search(r"Boost-([0-9.]+)", cache.get("Boost_DIR", ""))
    if m:
        boost = m.group(1)
    else:
        try:
            with open("/usr/include/boost/version.hpp", encoding="utf-8") as f:
                m = re.search(r'BOOST_LIB_VERSION "([0-9_]+)"', f.read())
                boost = m.group(1).replace("_", ".") if m else boost
        except OSError:
            pass
    commit = run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe",
                  "--always", "--dirty"])
    return cpu, ncpu, compiler, flags, boost, commit


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", help="CMake build dir (for compiler and Boost version)")
    ap.add_argument("--command", help="the command that produced the results (printed)")
    ap.add_argument("results", nargs="+", help="Google Benchmark JSON files")
    args = ap.parse_args()

    medians, cvs, context = load_medians(args.results)
    cpu, ncpu, compiler, flags, boost, commit = machine(args.build_dir)
    print(f"Machine: {ncpu} CPUs, {cpu}, {platform.system()} {platform.release()}  ")
    print(f"Compiler: {compiler} ({flags or 'default flags'}); Boost {boost}; "
          f"Google Benchmark library build: {context.get('library_build_type', '?')}  ")
    reps = {b.get("repetitions") for b in medians.values()}
    print(f"kaa commit {commit or '?'}; {context.get('date', '')}; medians of "
          f"{'/'.join(str(r) for r in sorted(x for x in reps if x)) or 1} repetitions; "
          "CPU time unless marked real time; ratio < 1 means kaa is faster.  ")
    if args.command:
        print(f"Command: `{args.command}`")
    print()
    print("| operation | baseline | kaa median | baseline median | ratio (kaa/baseline) | noise (max CV) |")
    print("|---|---|---:|---:|---:|---:|")
    found = False
    for op, label, k, b in pairs(medians):
        found = True
        kt, real = seconds(k)
        bt, _ = seconds(b)
        ki, bi = per_item(k), per_item(b)
        note = []
        if ki and bi:
            kt, bt = ki, bi
            note.append("per item")
        if real:
            op = op.removesuffix("/real_time")
            note.append("real time")
        opname = f"{op} ({', '.join(note)})" if note else op
        noise = [c for c in (cv_of(cvs, k["run_name"]), cv_of(cvs, b["run_name"])) if c is not None]
        noise_s = f"{max(noise) * 100:.1f}%" if noise else "-"
        print(f"| `{opname}` | {label} | {fmt_time(kt)} | {fmt_time(bt)} | "
              f"{kt / bt:.2f}x | {noise_s} |")
        for key, (what, unit) in COUNTERS.items():
            kv, bv = k.get(key), b.get(key)
            if kv is None or bv is None:
                continue
            ratio = f"{kv / bv:.2f}x" if bv > 0 else "-"
            print(f"| `{op}`: {what} | {label} | {fmt_counter(kv, unit)} | "
                  f"{fmt_counter(bv, unit)} | {ratio} | - |")
    if not found:
        print("| (no kaa/baseline pairs found) | | | | | |")
        return 1
    if ERRORS:
        print(f"bench_table.py: {ERRORS} benchmark(s) reported an error (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
