#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""ctest kaa_gdb_helper: scripts/kaa_gdb.py against samples/debugging.

Stops the sample at kaa::log_dump() (three live coroutines: 'main' running,
'read request 3' and 'serve client 3' suspended) and checks what
`kaa coroutines` and `kaa bt` print there; then sends it SIGABRT, and reads the
kernel's core file the same way, unless cores go to a pipe (systemd-coredump
and the like), which is said and skipped.

Usage: kaa_gdb_test.py <debugging binary> <kaa_gdb.py> <samples/debugging.cpp>
Exit 77 (ctest SKIP_RETURN_CODE) where gdb is missing or may not trace.
"""
import glob
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def line_of(source, text):
    with open(source, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise SystemExit("kaa_gdb_test: %r not found in %s" % (text, source))


def gdb_run(gdb, script, args, cwd):
    cmd = [gdb, "-batch", "-nx", "-ex", "set debuginfod enabled off", "-ex", "set disable-randomization off",
           "-ex", "set confirm off", "-x", script] + args

    def allow_cores():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240,
                       preexec_fn=allow_cores)
    return p.stdout


def check(what, output, patterns):
    failed = [p for p in patterns if not re.search(p, output, re.MULTILINE)]
    for p in failed:
        print("FAILED (%s): no match for %r" % (what, p))
    if failed:
        print("---- gdb output (%s) ----\n%s" % (what, output))
    return not failed


def main():
    binary, script, source = (os.path.abspath(a) for a in sys.argv[1:4])
    gdb = shutil.which("gdb")
    if not gdb:
        print("SKIPPED: gdb is not installed (scripts/run.sh installs it)")
        return SKIP
    serve_line = line_of(source, 'kaa::coroutine({.name = "serve client "')
    serve_wait = line_of(source, "std::string request = await(read_request(client));")
    read_line = line_of(source, 'kaa::coroutine({.name = "read request "')
    # The await in read_request() spans the job's lambda: the call's line is
    # any of them.
    first = line_of(source, "return await(kaa::threaded(")
    read_wait = "(%s)" % "|".join(str(n) for n in range(first, first + 6))
    listing = [
        r"^3 kaa coroutine\(s\) on the loop thread \(LWP \d+\):$",
        r"^#1 'main' running, started at debugging\.cpp:\d+$",
        r"^#2 'read request 3' suspended, started at debugging\.cpp:%d\n"
        r"    stopped in 0x[0-9a-f]+ in operator\(\) at debugging\.cpp:%s$" % (read_line, read_wait),
        r"^#3 'serve client 3' suspended, started at debugging\.cpp:%d\n"
        r"    stopped in 0x[0-9a-f]+ in operator\(\) at debugging\.cpp:%d$" % (serve_line, serve_wait),
    ]
    backtrace = [
        r"^coroutine #3 'serve client 3' suspended",
        r"^#0 +0x[0-9a-f]+ in suspend at coroutine\.cpp:\d+$",
        r"^#\d+ +0x[0-9a-f]+ in kaa::this_coroutine::await<.*> at coroutine\.hpp:\d+$",
        r"^#\d+ +0x[0-9a-f]+ in operator\(\) at debugging\.cpp:%d$" % serve_wait,
        r"^#\d+ +0x[0-9a-f]+ in trampoline at coroutine\.cpp:\d+$",
    ]
    ok = True
    with tempfile.TemporaryDirectory() as work:
        live = gdb_run(gdb, script, ["-ex", "break kaa::log_dump", "-ex", "run", "-ex", "kaa coroutines",
                                     "-ex", "kaa bt 3", "-ex", "signal SIGABRT", binary], work)
        if re.search(r"ptrace: Operation not permitted|Could not trace the inferior|"
                     r"Couldn't get personality|warning: Error disabling address space randomization", live) \
                and "kaa coroutine(s)" not in live:
            print("SKIPPED: gdb may not trace processes here\n" + live)
            return SKIP
        ok &= check("live process", live, listing + backtrace)

        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
        cores = glob.glob(os.path.join(work, "core*"))
        if pattern.startswith("|"):
            print("core file part skipped: cores go to a program here (core_pattern %r)" % pattern)
        elif not cores:
            print("core file part skipped: the kernel wrote no core into the working directory "
                  "(core_pattern %r)" % pattern)
        else:
            core = gdb_run(gdb, script, ["-ex", "kaa coroutines", "-ex", "kaa bt 3", binary, cores[0]], work)
            ok &= check("core file", core, listing + backtrace)
            if ok:
                print("core file: listed and unwound as the live process")
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
