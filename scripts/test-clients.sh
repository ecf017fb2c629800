#!/usr/bin/env bash
# Client conformance tests: run real AWS clients against a local Rivulet server.
#
#   bash scripts/test-clients.sh
#
# - Python suite (tests/clients/test_boto3_cli.py): boto3 and the AWS CLI v1, from a venv
#   at .venv-clients/ (created, and the pinned packages installed, when missing).
# - JS suite (tests/clients/js/test.mjs): @aws-sdk/client-kinesis with its default
#   HTTP/2 request handler, i.e. cleartext HTTP/2 (h2c) to the server.
# - CloudWatch suite (tests/clients/test_cloudwatch.py): the CloudWatch-compatible API on
#   the same port through boto3 and the AWS CLI from the same venv: metrics of the Kinesis
#   data path, PutMetricData and queries, alarms evaluated by the server and their actions,
#   dashboards, and `rivulet alarms install-recommended` (--rivulet-bin).
#
# Uses ${RIVULET_BIN:-target/debug/rivulet}, building it when it is missing. Starts one
# server (--limits off) on a free loopback port with a temporary data dir and stops it on
# exit. The Python and CloudWatch suites get the binary too (--rivulet-bin) and run their
# throughput-limit tests against a second server of their own with the default --limits aws.
# The last line printed is always `clients: N passed, M failed`; the exit status is
# non-zero when anything failed (a setup failure counts as one failure).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

AWSCLI_VERSION="1.45.11"
BOTO3_VERSION="1.43.11"
VENV="$ROOT/.venv-clients"
JS_DIR="$ROOT/tests/clients/js"
RIVULET_BIN="${RIVULET_BIN:-target/debug/rivulet}"
SUITE_TIMEOUT="${CLIENT_SUITE_TIMEOUT:-600}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rivulet-clients.XXXXXX")"
SERVER_PID=""
PASSED=0
FAILED=0
SUMMARY_PRINTED=0

on_exit() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]]; then
    { kill "$SERVER_PID" && wait "$SERVER_PID"; } >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  if [[ "$SUMMARY_PRINTED" == 0 ]]; then
    # Setup failed (or the script was interrupted) before the summary.
    echo "test-clients: aborted before the suites finished (exit $rc)" >&2
    echo "clients: $PASSED passed, $((FAILED + 1)) failed"
    exit 1
  fi
}
trap on_exit EXIT

log() { echo "== $*"; }

# ---------------------------------------------------------------- Python venv
venv_ready() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - "$AWSCLI_VERSION" "$BOTO3_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if (version("awscli"), version("boto3")) == (sys.argv[1], sys.argv[2]) else 1)
EOF
}

if ! venv_ready; then
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv at .venv-clients/"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  log "installing awscli==$AWSCLI_VERSION boto3==$BOTO3_VERSION"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    "awscli==$AWSCLI_VERSION" "boto3==$BOTO3_VERSION"
  venv_ready || { echo "venv at $VENV lacks the pinned awscli/boto3" >&2; exit 1; }
fi

# ---------------------------------------------------------------- JS dependencies
js_ready() {
  node -e '
    const want = require(process.argv[1]).dependencies["@aws-sdk/client-kinesis"];
    const have = require(process.argv[2]).version;
    process.exit(want === have ? 0 : 1);
  ' "$JS_DIR/package.json" "$JS_DIR/node_modules/@aws-sdk/client-kinesis/package.json" \
    >/dev/null 2>&1
}

if ! js_ready; then
  log "installing JS dependencies in tests/clients/js"
  if [[ -f "$JS_DIR/package-lock.json" ]]; then
    (cd "$JS_DIR" && npm ci --no-audit --no-fund)
  else
    (cd "$JS_DIR" && npm install --no-audit --no-fund)
  fi
  js_ready || { echo "tests/clients/js lacks the pinned @aws-sdk/client-kinesis" >&2; exit 1; }
fi

# ---------------------------------------------------------------- server
if [[ ! -x "$RIVULET_BIN" ]]; then
  log "building $RIVULET_BIN"
  cargo build -p rivulet --bin rivulet
fi
[[ -x "$RIVULET_BIN" ]] || { echo "no server binary at $RIVULET_BIN" >&2; exit 1; }

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
ENDPOINT="http://127.0.0.1:$PORT"
mkdir -p "$WORK/data"
"$RIVULET_BIN" serve --limits off --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 1 100); do # up to ~10 s
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    break
  fi
  if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()' "$PORT" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [[ "$ready" != 1 ]]; then
  echo "rivulet did not accept connections on 127.0.0.1:$PORT; server log:" >&2
  tail -n 40 "$WORK/server.log" >&2 || true
  exit 1
fi
log "rivulet serving at $ENDPOINT ($RIVULET_BIN)"

# ---------------------------------------------------------------- client environment
# Only these credentials and settings; nothing from the user's AWS configuration.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_REGION \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS AWS_CA_BUNDLE AWS_ROLE_ARN \
  AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
  AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_USE_FIPS_ENDPOINT AWS_USE_DUALSTACK_ENDPOINT \
  AWS_MAX_ATTEMPTS AWS_RETRY_MODE
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

# ---------------------------------------------------------------- suites
# run_suite NAME COMMAND...: the command writes "passed failed" to $WORK/NAME.counts.
run_suite() {
  local name=$1 rc=0 p f
  shift
  log "$name suite"
  timeout "$SUITE_TIMEOUT" "$@" --endpoint "$ENDPOINT" --counts-file "$WORK/$name.counts" || rc=$?
  if [[ -s "$WORK/$name.counts" ]] && read -r p f <"$WORK/$name.counts"; then
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    if [[ "$rc" != 0 && "$f" == 0 ]]; then
      echo "$name suite exited $rc with no failed test" >&2
      FAILED=$((FAILED + 1))
    fi
  else
    echo "$name suite reported no counts (exit $rc)" >&2
    FAILED=$((FAILED + 1))
  fi
}

run_suite python "$VENV/bin/python" tests/clients/test_boto3_cli.py --rivulet-bin "$RIVULET_BIN"
run_suite js node "$JS_DIR/test.mjs"
run_suite constraints "$VENV/bin/python" tests/clients/test_model_constraints.py
run_suite cloudwatch "$VENV/bin/python" tests/clients/test_cloudwatch.py --rivulet-bin "$RIVULET_BIN"

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "rivulet exited during the tests; server log:" >&2
  tail -n 40 "$WORK/server.log" >&2 || true
  FAILED=$((FAILED + 1))
fi
if [[ "$FAILED" != 0 ]] && [[ -s "$WORK/server.log" ]]; then
  echo "-- last lines of the server log --" >&2
  tail -n 20 "$WORK/server.log" >&2 || true
fi

SUMMARY_PRINTED=1
echo "clients: $PASSED passed, $FAILED failed"
[[ "$FAILED" == 0 ]]
