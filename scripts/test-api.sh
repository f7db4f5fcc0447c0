#!/usr/bin/env bash
# The API with its real client: starts `pigment serve` (debug build) on the demo model at a free port, runs
# tests/api/test_webuiapi.py (PyPI's webuiapi, in the .venv-api that scripts/setup.sh makes), then stops the server
# with Ctrl+C (SIGINT) and checks it exits cleanly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="$root/.venv-api/bin/python"
[ -x "$python" ] || { echo "test-api: $python missing; run scripts/setup.sh" >&2; exit 1; }

cargo build -p pigment-cli --locked --quiet
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
# Job control gives the server its own process group, so SIGINT is not ignored as it is for background jobs.
set -m
target/debug/pigment serve --port "$port" --model models/tiny-sd --models-folder tests/fixtures/models \
  --upscalers tests/fixtures/models --no-cache >"$log" 2>&1 &
server=$!
set +m
cleanup() { kill "$server" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

for _ in $(seq 1 150); do
  kill -0 "$server" 2>/dev/null || { echo "test-api: the server exited:" >&2; cat "$log" >&2; exit 1; }
  "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1)" 2>/dev/null && break
  sleep 0.2
done

status=0
PIGMENT_API_PORT="$port" "$python" tests/api/test_webuiapi.py || status=$?

kill -INT "$server"
stopped=0
for _ in $(seq 1 100); do
  kill -0 "$server" 2>/dev/null || { stopped=1; break; }
  sleep 0.2
done
exit_code=0
wait "$server" || exit_code=$?
echo "test-api: server log (one line per request):" >&2
tail -n 5 "$log" >&2
if [ "$stopped" -ne 1 ] || [ "$exit_code" -ne 0 ]; then
  echo "test-api: the server did not stop cleanly on SIGINT (exit code $exit_code)" >&2
  cat "$log" >&2
  status=1
fi
exit "$status"
