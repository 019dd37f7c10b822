#!/usr/bin/env bash
# Two (or more) `qvla serve` processes behind HAProxy on one machine: the scale-out recipe of src/server/README.md.
#
#   tools/fleet/fleet.sh [--port 8000] [--servers 2] [--checkpoint weights/tiny] [-- extra qvla serve options]
#
# Servers listen on 127.0.0.1:PORT+1 … PORT+N, HAProxy on 127.0.0.1:PORT (tools/fleet/haproxy.cfg, health checks
# on /readyz). Ctrl-C / SIGTERM stops HAProxy and SIGTERMs the servers (each drains: queued requests finish,
# connections close with 1001). Restart one server without dropping requests: `kill -TERM <its pid>`, then start
# it again on the same port; HAProxy takes it back once its /readyz answers 200.
# With more than 2 servers, add `server sN "${QVLA_SN}"` lines to a copy of haproxy.cfg and pass it as HAPROXY_CFG.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=8000; servers=2; ckpt=weights/tiny; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --servers) servers="$2"; shift 2 ;;
    --checkpoint) ckpt="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "fleet.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v haproxy >/dev/null || { echo "fleet.sh: haproxy is not installed (apt-get install haproxy; tools/setup.sh does it)" >&2; exit 1; }
cfg="${HAPROXY_CFG:-tools/fleet/haproxy.cfg}"
pids=()
stop() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop INT TERM EXIT
export FLEET_BIND="127.0.0.1:${port}"
for i in $(seq 1 "$servers"); do
  node bin/qvla.js serve --checkpoint "$ckpt" --port $((port + i)) "${extra[@]}" &
  pids+=($!)
  export "QVLA_S${i}=127.0.0.1:$((port + i))"
done
haproxy -f "$cfg" -db &
hp=$!
pids=("$hp" "${pids[@]}")
echo "fleet.sh: HAProxy on ws://${FLEET_BIND} in front of ${servers} server(s); Ctrl-C to stop" >&2
# Runs until HAProxy stops (or Ctrl-C); a server stopped by hand may be started again meanwhile.
wait "$hp" || true
