#!/usr/bin/env bash
# Runs cargo-fuzz targets one after another for SECONDS each on the kept corpus, and prints
# one line per target: runs, coverage, corpus size and whether it found anything. Needs the
# nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New corpus entries are
# written to fuzz/corpus/TARGET; minimize with `cargo +nightly fuzz cmin TARGET` before
# committing. CI does not run this: `cargo test --test it fuzz_corpus` replays the corpus on
# stable instead.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 1800 s, every target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
seconds=${1:-1800}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
status=0
for t in "${targets[@]}"; do
  cargo +nightly fuzz build -O "$t" >/dev/null 2>&1 || cargo +nightly fuzz build -O "$t"
  log=$(mktemp "/tmp/fuzz-$t.XXXXXX.log")
  mkdir -p "corpus/$t"
  started=$(date +%s)
  if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    result="clean"
  else
    result="FOUND SOMETHING (see $log and fuzz/artifacts/$t)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "$t: $(( $(date +%s) - started )) s, $runs runs, coverage $cov edges, corpus $(ls "corpus/$t" | wc -l) inputs: $result"
done
exit $status
