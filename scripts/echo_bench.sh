#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds echo_bench in Release and runs it: kaa's coroutine echo server against
# asio::spawn, a raw epoll server and Python asyncio (skipped without python3),
# all driven by the same load client, over loopback. Arguments go to
# echo_bench (defaults: --connections 100 --messages 1000 --size 64
# --repeat 3 --time-limit 60); --quick is a short smoke run.
#
# Environment: KAA_BENCH_BUILD_DIR (default build-bench/), BENCH_JOBS.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KAA_BENCH_BUILD_DIR:-$root/build-bench}
args=()
for arg in "$@"; do
    case $arg in
    --quick) args+=(--messages 100 --repeat 1 --time-limit 20) ;;
    -h | --help)
        sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) args+=("$arg") ;;
    esac
done

generator=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then
    generator=(-G Ninja)
fi
echo "== configuring and building echo_bench in $build (Release, -O2)" >&2
cmake -S "$root" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DKAA_BUILD_BENCH=ON -DKAA_BUILD_TESTS=OFF -DKAA_BUILD_SAMPLES=OFF >/dev/null
cmake --build "$build" --target echo_bench --parallel "${BENCH_JOBS:-$(nproc)}" >&2
"$build/bench/echo_bench" "${args[@]}"
