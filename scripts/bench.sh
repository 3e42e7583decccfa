#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Builds kaa's benchmarks in Release, runs every bench_* program and prints
# one Markdown table of kaa/baseline ratios (see bench/README.md).
#
#   scripts/bench.sh            full run: 5 repetitions, medians
#   scripts/bench.sh --quick    smoke run (CI): 1 repetition, --benchmark_min_time=0.01,
#                               10,000 coroutines in the scale benchmark
#   scripts/bench.sh --filter=REGEX   only benchmarks matching REGEX
#   scripts/bench.sh --no-build       run the bench_* programs already built
#                                     in the build directory (CI: the plain build)
#   scripts/bench.sh --build-dir=DIR  build directory (default build-bench/)
#
# Environment: KAA_BENCH_BUILD_DIR (default build-bench/), CXX, BENCH_JOBS,
# KAA_BENCH_SCALE_COUNT (coroutines in the scale benchmark, default 1,000,000).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KAA_BENCH_BUILD_DIR:-$root/build-bench}
quick=0
filter=""
do_build=1
command_line="scripts/bench.sh${*:+ $*}"

for arg in "$@"; do
    case $arg in
    --quick) quick=1 ;;
    --filter=*) filter=${arg#--filter=} ;;
    --no-build) do_build=0 ;;
    --build-dir=*) build=${arg#--build-dir=} ;;
    -h | --help)
        sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

generator=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then
    generator=(-G Ninja)
fi

if ((do_build)); then
    echo "== configuring and building in $build (Release, -O2)" >&2
    cmake -S "$root" -B "$build" "${generator[@]}" \
        -DCMAKE_BUILD_TYPE=Release \
        "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
        -DKAA_BUILD_BENCH=ON -DKAA_BUILD_TESTS=OFF -DKAA_BUILD_SAMPLES=OFF >/dev/null
    cmake --build "$build" --target kaa_benchmarks --parallel "${BENCH_JOBS:-$(nproc)}" >&2
fi

results=$build/bench-results
rm -rf "$results"
mkdir -p "$results"

if ((quick)); then
    bench_args=(--benchmark_format=json --benchmark_min_time=0.01)
    export KAA_BENCH_SCALE_COUNT=${KAA_BENCH_SCALE_COUNT:-10000}
else
    bench_args=(--benchmark_format=json --benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
fi
if [[ -n $filter ]]; then
    bench_args+=("--benchmark_filter=$filter")
fi

shopt -s nullglob
programs=("$build"/bench/bench_*)
if ((${#programs[@]} == 0)); then
    echo "bench.sh: no bench_* programs in $build/bench" >&2
    exit 1
fi
for prog in "${programs[@]}"; do
    [[ -x $prog && -f $prog ]] || continue
    name=$(basename "$prog")
    echo "== running $name" >&2
    # JSON goes to the file; the library's own notes (CPU scaling...) to stderr.
    # A crash fails the script (set -e): the CI smoke run exists to catch it.
    "$prog" "${bench_args[@]}" >"$results/$name.json"
done

echo >&2
python3 "$root/scripts/bench_table.py" --build-dir "$build" --command "$command_line" "$results"/*.json

# The loopback echo load test (io): servers in processes of their own, so its
# own table (scripts/echo_bench.sh runs it alone, with options).
if [[ -x $build/bench/echo_bench && ( -z $filter || echo =~ $filter ) ]]; then
    echo "== running echo_bench" >&2
    echo
    if ((quick)); then
        "$build/bench/echo_bench" --messages 100 --repeat 1 --time-limit 20
    else
        "$build/bench/echo_bench"
    fi
fi

# Guest mode's idle cost (kaa::glib): a count, not a timing, so its own table.
if [[ -x $build/bench/embed_idle && ( -z $filter || embed_idle =~ $filter ) ]]; then
    echo "== running embed_idle" >&2
    if ((quick)); then "$build/bench/embed_idle" --quick; else "$build/bench/embed_idle"; fi
fi
