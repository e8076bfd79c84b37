#!/usr/bin/env bash
# Schemathesis against a running `custos serve`: every operation of the
# served OpenAPI description (GET /openapi.json) is called with generated
# requests, valid and invalid, and every answer must be no server error,
# have a status the description lists, and match the schema described for
# that status.
#
# The server is the debug binary (built by the caller) on a free loopback
# port, with a throwaway data directory and one key holding every scope.
# The `/v1` and probe routes take the key as a bearer token; Sift's routes
# take it as HTTP Basic, as Sift's clients send it, so they run as a second
# pass with that header.
#
# Pinned: schemathesis 4.32.5. Examples per operation and the seed are fixed
# so that a run is reproducible (`--seed`). No check is disabled. Schemathesis
# leaves out `GET /openapi.json` itself (it reports 45 of the 46
# operations); the api tests fetch and check it (tests/api/openapi.rs).
set -euo pipefail

cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug/custos"
examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
seed="${SCHEMATHESIS_SEED:-20261206}"

work="$(mktemp -d)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_server EXIT

python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
key="schemathesis-check-key-0123456789"
CUSTOS_API_KEYS="$key" CUSTOS_LOG=warn "$bin" serve \
  --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 300); do
  if "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "custos did not become healthy on port $port" >&2
  cat "$work/server.log" >&2
  exit 1
fi

basic="$(printf '%s:' "$key" | base64 | tr -d '\n')"
# From the throwaway directory: schemathesis keeps a cache where it runs.
run() {
  (cd "$work" && "$work/venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --max-examples "$examples" --seed "$seed" --workers 1 \
    --report junit --report-dir "$work/report" \
    "$@")
}
status=0
run --exclude-path-regex '^/v(205|3)/' -H "Authorization: Bearer $key" || status=1
run --include-path-regex '^/v(205|3)/' -H "Authorization: Basic $basic" || status=1
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -n 200 "$work/server.log" >&2
fi
exit "$status"
