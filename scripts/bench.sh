#!/usr/bin/env bash
# Builds kaa's benchmarks in Release, runs every bench_* program and prints
# one Markdown table of kaa/baseline ratios (see bench/README.md).
#
#   scripts/bench.sh            full run: 5 repetitions, medians
#   scripts/bench.sh --quick    CI smoke run (--benchmark_min_time=0.01)
#   scripts/bench.sh --filter=REGEX   only benchmarks matching REGEX
#
# Environment: KAA_BENCH_BUILD_DIR (default build-bench/), CXX, BENCH_JOBS.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KAA_BENCH_BUILD_DIR:-$root/build-bench}
quick=0
filter=""

for arg in "$@"; do
    case $arg in
    --quick) quick=1 ;;
    --filter=*) filter=${arg#--filter=} ;;
    -h | --help)
        sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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

echo "== configuring and building in $build (Release, -O2)" >&2
cmake -S "$root" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DKAA_BUILD_BENCH=ON -DKAA_BUILD_TESTS=OFF -DKAA_BUILD_SAMPLES=OFF >/dev/null
cmake --build "$build" --target kaa_benchmarks --parallel "${BENCH_JOBS:-$(nproc)}" >&2

results=$build/bench-results
rm -rf "$results"
mkdir -p "$results"

bench_args=(--benchmark_format=json --benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
if ((quick)); then
    bench_args+=(--benchmark_min_time=0.01)
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
    "$prog" "${bench_args[@]}" >"$results/$name.json"
done

echo >&2
python3 "$root/scripts/bench_table.py" --build-dir "$build" "$results"/*.json

# Guest mode's idle cost (kaa::glib): a count, not a timing, so its own table.
if [[ -x $build/bench/embed_idle && ( -z $filter || embed_idle =~ $filter ) ]]; then
    echo "== running embed_idle" >&2
    if ((quick)); then "$build/bench/embed_idle" --quick; else "$build/bench/embed_idle"; fi
fi
