#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The two commands of README.md:
#   bash scripts/run.sh sample   # install what is missing, build, run the flagship sample
#   bash scripts/run.sh test     # install what is missing, build, run all tests (plain, ASan+UBSan, TSan)
# Memcheck is a separate command (minutes; not part of `test`): bash scripts/valgrind.sh
#
# Both first install the Debian packages that are missing (as root; a non-root
# user is told the one line to run as root). `test` builds build/ (plain),
# build-asan/ (KAA_SANITIZE=address) and build-tsan/ (KAA_SANITIZE=thread),
# runs ctest and the tour in each, and exits non-zero if anything failed. .ci/run is `bash scripts/run.sh test`.
#
# Environment: KAA_JOBS (default 2) for build and ctest parallelism;
# KAA_BUILD_DIR / KAA_ASAN_BUILD_DIR / KAA_TSAN_BUILD_DIR override the build
# directories (default build/, build-asan/, build-tsan/).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${KAA_JOBS:-2}
BUILD_DIR=${KAA_BUILD_DIR:-build}
ASAN_DIR=${KAA_ASAN_BUILD_DIR:-build-asan}
# shellcheck disable=SC2034 # used by the TSan pass below once it is enabled
TSAN_DIR=${KAA_TSAN_BUILD_DIR:-build-tsan}

# Boost 1.81, not Debian's default 1.74: the 1.81 -dev packages conflict with the
# 1.74 ones, so they are named explicitly (apt removes 1.74's if present).
# `sample` installs only what the library and the flagship sample need;
# `test` adds the test, benchmark, sanitizer-run and toolkit packages.
SAMPLE_PACKAGES=(
    cmake ninja-build g++
    libboost1.81-dev libboost-context1.81-dev
)
TEST_PACKAGES=(
    "${SAMPLE_PACKAGES[@]}"
    libboost-thread1.81-dev libboost-fiber1.81-dev
    googletest libgtest-dev libgmock-dev libbenchmark-dev
    valgrind gdb
    pkg-config libglib2.0-dev libgtk-3-dev xvfb xauth
    python3
    qt6-base-dev
    debhelper dpkg-dev lintian
)

log() { printf '\n=== run.sh: %s\n' "$*"; }
die() {
    printf 'run.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: bash scripts/run.sh sample   # install what is missing, build, run the flagship sample
       bash scripts/run.sh test     # install what is missing, build, run all tests (plain, ASan+UBSan, TSan)
EOF
    exit 2
}

# Prints the packages of "$@" that dpkg does not report as installed.
missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [[ $status == installed ]] || printf '%s\n' "$pkg"
    done
}

# ensure_packages <package>...: installs those that are missing.
ensure_packages() {
    command -v dpkg-query >/dev/null || die "this script installs Debian packages and needs dpkg-query (Debian 12)"
    local missing=() packages=("$@")
    mapfile -t missing < <(missing_packages "${packages[@]}")
    if ((${#missing[@]} == 0)); then
        log "all required Debian packages are installed"
        return
    fi
    local install="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if ((EUID != 0)); then
        printf 'run.sh: missing Debian packages: %s\n' "${missing[*]}" >&2
        printf 'run.sh: run this line as root, then run this script again:\n' >&2
        printf '    apt-get update && %s\n' "$install" >&2
        exit 1
    fi
    log "installing missing Debian packages: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "${missing[@]}"
    mapfile -t missing < <(missing_packages "${packages[@]}")
    ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
}

# configure <dir> [cmake args...]: Ninja for a new build directory; an existing
# one keeps the generator it was made with (cmake refuses to switch).
configure() {
    local dir=$1
    shift
    local generator=()
    [[ -f $dir/CMakeCache.txt ]] || generator=(-G Ninja)
    cmake -S . -B "$dir" "${generator[@]}" "$@"
}

build() {
    local dir=$1
    shift
    cmake --build "$dir" -j "$JOBS" "$@"
}

# Phase bookkeeping for the closing summary.
PHASES=()
TOTAL_PASSED=0
TOTAL_FAILED=0
FAILED_PHASES=()
SCRIPT_START=$SECONDS
phase_start() {
    PHASE_NAME=$1
    PHASE_START=$SECONDS
    log "$PHASE_NAME"
}
phase_end() {
    PHASES+=("$PHASE_NAME $((SECONDS - PHASE_START))s${1:+ ($1)}")
}

# Runs on exit (trap), so that a failed build still ends with the summary.
# shellcheck disable=SC2317
summary() {
    local rc=$? phases
    [[ ${MODE:-} == test ]] || return 0
    [[ -n ${PHASE_NAME:-} && ${PHASES[*]:-} != *"$PHASE_NAME "* ]] && PHASES+=("$PHASE_NAME: aborted")
    phases=$(printf '%s; ' "${PHASES[@]}")
    printf '\n=== run.sh test: %stotal %ss\n' "$phases" "$((SECONDS - SCRIPT_START))"
    if ((rc == 0)); then
        printf 'summary: %d passed, %d failed\n' "$TOTAL_PASSED" "$TOTAL_FAILED"
    else
        printf 'run.sh test: FAILED%s\n' "${FAILED_PHASES[*]:+ in: ${FAILED_PHASES[*]}}"
        printf 'summary: %d passed, %d failed\n' "$TOTAL_PASSED" "$((TOTAL_FAILED > 0 ? TOTAL_FAILED : 1))"
    fi
}

# run_suite <dir> <label>: runs the whole ctest suite, then the flagship sample
# (it ends by itself; the timeout turns a hang into a failure). A failure is
# recorded, the remaining phases still run, and the script exits non-zero.
run_suite() {
    local dir=$1 label=$2 out rc=0
    out=$(mktemp)
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$JOBS" 2>&1 | tee "$out" || rc=$?
    local line passed=0 failed=0
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n1 || true)
    if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
        failed=${BASH_REMATCH[1]}
        passed=$((BASH_REMATCH[2] - failed))
    elif ((rc != 0)); then
        failed=1
    fi
    rm -f "$out"
    ((rc == 0 && failed == 0)) || FAILED_PHASES+=("$label tests")
    # The soak test's invariant summary (operations, aborts, exceptions, all
    # accounted for): ctest keeps passing tests' output in LastTest.log.
    grep -h '^soak summary' "$dir/Testing/Temporary/LastTest.log" | sed "s/^/[$label] /" || true

    log "running $dir/samples/tour ($label)"
    out=$(mktemp)
    if run_tour "$dir" >"$out" 2>&1; then
        passed=$((passed + 1))
    else
        rc=$?
        printf 'run.sh: %s/samples/tour failed (exit %d%s); its last output:\n' "$dir" "$rc" \
            "$( ((rc == 124)) && echo ', timed out')"
        tail -n 40 "$out"
        failed=$((failed + 1))
        FAILED_PHASES+=("$label tour")
    fi
    rm -f "$out"
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    phase_end "$passed passed, $failed failed"
}

run_tour() {
    timeout 120 "$1/samples/tour"
}

MODE=${1:-}
[[ $# -eq 1 ]] || usage
case $MODE in
sample | test) ;;
*) usage ;;
esac
trap summary EXIT

# Debug information: -g1 (line tables, enough for every stack trace a test,
# a sanitizer or a crash prints) instead of -g. Full debug information is
# about a third of the compile time of a test file, and the three builds are
# nearly all of the test command's time. For a debugger, configure a build of
# your own (README.md).
PLAIN_CONFIG=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DKAA_SANITIZE=)

if [[ $MODE == sample ]]; then
    ensure_packages "${SAMPLE_PACKAGES[@]}"
    log "configuring $BUILD_DIR/ (RelWithDebInfo)"
    configure "$BUILD_DIR" "${PLAIN_CONFIG[@]}" -DKAA_BUILD_SAMPLES=ON
    log "building the tour sample"
    build "$BUILD_DIR" --target tour
    log "running $BUILD_DIR/samples/tour"
    timeout 120 "$BUILD_DIR/samples/tour"
    exit 0
fi

# --- test -----------------------------------------------------------------------

phase_start "packages"
ensure_packages "${TEST_PACKAGES[@]}"
phase_end

# Plain build: everything (library, checkheaders, tests, samples, benchmarks).
phase_start "plain build"
configure "$BUILD_DIR" "${PLAIN_CONFIG[@]}" \
    -DKAA_BUILD_TESTS=ON -DKAA_BUILD_SAMPLES=ON -DKAA_BUILD_BENCH=ON
build "$BUILD_DIR"
phase_end
phase_start "plain tests"
run_suite "$BUILD_DIR" plain

# Benchmark smoke run: every bench_* program of the plain build, briefly, so
# that the benchmarks cannot rot. No timing thresholds: it fails only if a
# benchmark crashes or reports an error. (Numbers: scripts/bench.sh, Release.)
phase_start "bench smoke"
if timeout 300 scripts/bench.sh --quick --no-build --build-dir="$BUILD_DIR" >"$BUILD_DIR/bench-smoke.md"; then
    cat "$BUILD_DIR/bench-smoke.md"
    TOTAL_PASSED=$((TOTAL_PASSED + 1))
    phase_end "ok"
else
    printf 'run.sh: the benchmark smoke run failed (exit %d)\n' "$?"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    FAILED_PHASES+=("bench smoke")
    phase_end "failed"
fi

# Sanitizer builds: -O1 with assertions on (Debug without NDEBUG), the usual
# trade-off for ASan/TSan between speed, stack use in coroutines and clear
# reports; -g1 as above (the reports keep their file:line frames).
# Benchmarks are left out: their numbers mean nothing under a sanitizer.
# So is checkheaders: whether each header compiles on its own does not
# depend on the sanitizer, and the plain build has checked it already.
SANITIZER_CONFIG=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1"
    -DKAA_BUILD_TESTS=ON -DKAA_BUILD_SAMPLES=ON -DKAA_BUILD_BENCH=OFF -DKAA_CHECK_HEADERS=OFF)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
phase_start "asan build"
configure "$ASAN_DIR" "${SANITIZER_CONFIG[@]}" -DKAA_SANITIZE=address
build "$ASAN_DIR"
phase_end
phase_start "asan tests"
run_suite "$ASAN_DIR" asan

# --- TSan pass (KAA_SANITIZE=thread, $TSAN_DIR/) ---------------------------------
# The coroutine switches are annotated for TSan (src/fiber_switch.hpp).
# test/tsan.supp lists each suppression with its reason.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/test/tsan.supp}
phase_start "tsan build"
configure "$TSAN_DIR" "${SANITIZER_CONFIG[@]}" -DKAA_SANITIZE=thread
build "$TSAN_DIR"
phase_end
phase_start "tsan tests"
run_suite "$TSAN_DIR" tsan
# --- end of TSan pass ------------------------------------------------------------

PHASE_NAME=
((${#FAILED_PHASES[@]} == 0)) || exit 1
exit 0
