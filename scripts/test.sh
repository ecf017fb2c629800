#!/usr/bin/env bash
# Every test Rivulet has that runs in minutes: the Rust suites (storage engine, unit and
# property tests, the aws-sdk-kinesis black-box suite with its SIGKILL crash test, the CLI
# over https with the `tls` feature), then the
# real-client suites (boto3, the AWS CLI, the JS SDK over HTTP/2), which install their own
# clients. The last line sums them up as `all: N passed, M failed`.
#
#   scripts/test.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

cargo test --workspace 2>&1 | tee "$log"
cargo_rc=${PIPESTATUS[0]}
# The https client (cargo feature `tls`): its own test, on the same test binary built with it.
# It makes its test certificates with openssl, installed here when missing (Debian).
if ! command -v openssl >/dev/null; then
  sudo_cmd=""
  [[ $(id -u) == 0 ]] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q openssl >/dev/null || echo "could not install openssl" >&2
fi
cargo test -p rivulet --features tls --test it -- cli::the_cli_speaks_https 2>&1 | tee -a "$log"
[[ ${PIPESTATUS[0]} == 0 ]] || cargo_rc=1
read -r cargo_passed cargo_failed < <(
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { print p + 0, f + 0 }' "$log"
)
if [[ $cargo_rc != 0 && $cargo_failed == 0 ]]; then
  cargo_failed=1 # a build failure or a crashed test binary
fi

bash scripts/test-clients.sh 2>&1 | tee "$log"
clients_rc=${PIPESTATUS[0]}
read -r clients_passed clients_failed < <(
  awk '/^clients: [0-9]+ passed, [0-9]+ failed$/ { p = $2; f = $4 } END { print p + 0, f + 0 }' "$log"
)
if [[ $clients_rc != 0 && $clients_failed == 0 ]]; then
  clients_failed=1
fi

passed=$((cargo_passed + clients_passed))
failed=$((cargo_failed + clients_failed))
echo "all: $passed passed, $failed failed"
[[ $failed == 0 ]]
