# shellcheck shell=bash
# Starting and stopping the firehose server for the scripts in scripts/ (sourced, not run:
# `source "$repo/scripts/lib/server.sh"`): one server process at a time, on loopback, on a
# port chosen by the OS, its address read from the line it prints once it listens.
# Owns the globals `server_pid` and `url` and the array FIREHOSE_LIMITS_OFF; `server_5xx`
# reads the running server's count of 5xx answers.

# Every per-user rate limit off: load scripts post far faster than people do.
# shellcheck disable=SC2034 # used by the scripts that source this file
FIREHOSE_LIMITS_OFF=(--rate-bookmarks off --rate-likes off --rate-messages off --rate-typing off --rate-signups off)

server_pid="${server_pid:-}"
url="${url:-}"

# server_start BIN DIR LOG [extra `serve` args...]
# Starts `BIN serve --bind 127.0.0.1:0 --data-dir DIR/data ARGS...` in the background,
# its stdout in DIR/server.out and its stderr in LOG; sets server_pid, then waits up to
# 30 s for `firehose listening on http://127.0.0.1:PORT` and sets url to that address.
# Returns 0 once the server listens. Otherwise prints why to stderr (naming LOG), stops
# whatever it started (server_pid is then empty) and returns 1; it never exits the shell.
server_start() {
  if (($# < 3)); then
    echo "server_start: usage: server_start BIN DIR LOG [serve args...]" >&2
    return 1
  fi
  local bin="$1" dir="$2" log="$3" _i
  shift 3
  mkdir -p "$dir" || return 1
  "$bin" serve --bind 127.0.0.1:0 --data-dir "$dir/data" "$@" >"$dir/server.out" 2>"$log" &
  server_pid=$!
  url=""
  for _i in $(seq 1 300); do
    url="$(sed -n 's/^firehose listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$dir/server.out")"
    url="${url%%$'\n'*}" # the first such line
    if [[ -n "$url" ]]; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "server exited early ($bin); see $log" >&2
      server_stop
      return 1
    fi
    sleep 0.1
  done
  echo "server ($bin) did not report its address within 30 s; see $log" >&2
  server_stop
  return 1
}

# server_stop: stops the server server_start started, if it still runs (TERM, up to 10 s,
# then KILL), reaps it and clears server_pid. Safe to call twice, or when none runs.
server_stop() {
  local _i
  if [[ -n "${server_pid:-}" ]]; then
    if kill -0 "$server_pid" 2>/dev/null; then
      kill -TERM "$server_pid" 2>/dev/null || true
      for _i in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}

# server_5xx [METHOD ROUTE]: how many 5xx answers other than 503 (a refusal of load, on
# purpose) the running server counts in its /metrics (firehose_http_requests_total), for
# METHOD on ROUTE, or over every route when none is given. Prints the number.
server_5xx() {
  curl -sS "$url/metrics" | python3 -c '
import re, sys
method, route = sys.argv[1], sys.argv[2]
total = 0
for line in sys.stdin:
    m = re.match(r"firehose_http_requests_total\{method=\"(\w+)\",route=\"([^\"]*)\",status=\"(\d+)\"\} (\d+)", line)
    if m and (not method or (m[1] == method and m[2] == route)) and m[3].startswith("5") and m[3] != "503":
        total += int(m[4])
print(total)' "${1:-}" "${2:-}"
}
