#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Valgrind memcheck over a representative part of the test suite:
#   bash scripts/valgrind.sh
#
# Builds build-valgrind/ (Debug, no sanitizer: Valgrind and the sanitizers
# exclude each other) and runs each test binary below under
#   valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
# with test/valgrind.supp. Coroutine stacks are registered with Valgrind
# (VALGRIND_STACK_REGISTER in src/stack.cpp, from the valgrind package's
# header), so it follows the switches. Exits non-zero on any error or leak.
# InProgress state blocks are recycled per thread (src/state_alloc.cpp), so
# memcheck does not see a use after free of a state; the ASan build does
# (the cache is off under the sanitizers).
#
# Environment: KAA_JOBS (default 2); KAA_VALGRIND_BUILD_DIR (default
# build-valgrind); KAA_VALGRIND_TESTS to name other test binaries.
# Death tests (a forked child that dies on purpose) and timing-heavy race
# loops are filtered out, and timer_test is left out: its ordering checks
# between deadlines a few milliseconds apart fail under Valgrind's slowdown,
# and they say nothing about memory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${KAA_JOBS:-2}
DIR=${KAA_VALGRIND_BUILD_DIR:-build-valgrind}
TESTS=(${KAA_VALGRIND_TESTS:-in_progress_test coroutine_test coroutine_stress_test abort_cascade_test task_test
    in_progress_all_test threaded_test signal_test main_loop_test fault_injection_test
    misuse_test shutdown_test soak_test})

command -v valgrind >/dev/null || {
    echo "valgrind.sh: valgrind is missing; as root: apt-get install -y --no-install-recommends valgrind" >&2
    exit 1
}
[[ -f /usr/include/valgrind/valgrind.h ]] ||
    echo "valgrind.sh: note: <valgrind/valgrind.h> missing; coroutine stacks are not registered" >&2

generator=()
[[ -f $DIR/CMakeCache.txt ]] || generator=(-G Ninja)
cmake -S . -B "$DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DKAA_SANITIZE= \
    -DKAA_BUILD_TESTS=ON -DKAA_BUILD_SAMPLES=OFF -DKAA_BUILD_BENCH=OFF >/dev/null
cmake --build "$DIR" -j "$JOBS" --target "${TESTS[@]}"

failed=()
for t in "${TESTS[@]}"; do
    printf '\n=== valgrind.sh: %s\n' "$t"
    if ! valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --suppressions=test/valgrind.supp --quiet \
        "$DIR/test/$t" --gtest_brief=1 '--gtest_filter=-*DeathTest*:ThreadedRace*:ShutdownRace*' \
        >"$DIR/valgrind-$t.log" 2>&1; then
        failed+=("$t")
        tail -n 60 "$DIR/valgrind-$t.log"
    else
        grep -E '^\[  PASSED  \]|^soak summary' "$DIR/valgrind-$t.log" || true
    fi
done
if ((${#failed[@]})); then
    printf '\nvalgrind.sh: FAILED: %s (logs: %s/valgrind-*.log)\n' "${failed[*]}" "$DIR"
    exit 1
fi
printf '\nvalgrind.sh: %d test binaries clean under memcheck (no errors, no definite/indirect leaks)\n' "${#TESTS[@]}"
