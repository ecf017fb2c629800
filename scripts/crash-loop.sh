#!/usr/bin/env bash
# SIGKILL loop: N iterations of load (8 producers, PutRecord and PutRecords, records from
# 10 bytes to 1 MiB) -> SIGKILL of the real server at a random moment -> restart -> check that
# every record acknowledged in any iteration so far reads back with the same shard, sequence
# number, data and order. The check is the `crash` test of crates/rivulet/tests/it; this
# script runs it with more iterations on a release build.
#
#   scripts/crash-loop.sh [ITERATIONS]     (default 1000; CI runs the test with 1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
iterations=${1:-1000}
RIVULET_CRASH_ITERATIONS=$iterations cargo test --release -p rivulet --test it -- \
  --exact crash::sigkill_under_load_loses_no_acknowledged_record --nocapture
