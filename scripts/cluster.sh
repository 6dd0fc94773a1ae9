#!/usr/bin/env bash
# Start a local cluster: one TTS server, one memory server, N cores and M bridges as separate
# `peromesh serve` processes on one PostgreSQL (--db-url) and one Redis (--cluster-url). Bridge j reaches the
# cores in the order j, j+1, … (so bridges spread over the cores and each fails over to the
# next). Ctrl-C stops everything. Extra arguments go to every core (e.g. --llm scripted).
#
#   scripts/cluster.sh [-c CORES] [-b BRIDGES] [--db-url URL] [--cluster-url URL] [core flags…]
#
# Ports: TTS 50052, memory 50053, core i on 50060+i, bridge j on 8765+j-1 (or $TTS_PORT, $MEMORY_PORT, $CORE_PORT_BASE+i,
# $BRIDGE_PORT_BASE+j-1). Token: $PEROMESH_TOKEN, else
# created once into ~/.peromesh/cluster/token. Logs: ~/.peromesh/cluster/<part>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=2 bridges=2
db_url="postgresql://postgres@127.0.0.1:5432/postgres"
cluster_url="redis://127.0.0.1:6379/0"
extra=()
tts_port="${TTS_PORT:-50052}" memory_port="${MEMORY_PORT:-50053}" core_base="${CORE_PORT_BASE:-50060}" bridge_base="${BRIDGE_PORT_BASE:-8765}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    -c) cores="$2"; shift 2 ;;
    -b) bridges="$2"; shift 2 ;;
    --db-url) db_url="$2"; shift 2 ;;
    --cluster-url) cluster_url="$2"; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
home="${PEROMESH_CLUSTER_DIR:-$HOME/.peromesh/cluster}"
mkdir -p "$home"
if [[ -z "${PEROMESH_TOKEN:-}" ]]; then
  [[ -s "$home/token" ]] || (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))' >"$home/token")
  PEROMESH_TOKEN="$(cat "$home/token")"
fi
export PEROMESH_TOKEN HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; }
trap stop EXIT INT TERM

run() {  # run NAME ARGS…: one serve process, logged, waited for until ready
  local name="$1"; shift
  .venv/bin/peromesh serve --data-dir "$home/$name" "$@" >"$home/$name.log" 2>&1 &
  pids+=("$!")
  until grep -q '^peromesh: ready' "$home/$name.log"; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name failed, see $home/$name.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "$name: $(grep -m1 '^peromesh: .* listening on' "$home/$name.log" | sed 's/.*listening on //')"
}

run tts --only tts --tts-port "$tts_port"
run memory --only memory --memory-port "$memory_port" --db-url "$db_url"  # memory rows in PostgreSQL too
addrs=()
for ((i = 1; i <= cores; i++)); do
  run "core$i" --only core --core-port $((core_base + i)) --tts-addr "127.0.0.1:$tts_port" \
    --memory-addr "127.0.0.1:$memory_port" --db-url "$db_url" --cluster-url "$cluster_url" "${extra[@]}"
  addrs+=("127.0.0.1:$((core_base + i))")
done
for ((j = 1; j <= bridges; j++)); do
  order=()
  for ((k = 0; k < cores; k++)); do order+=("${addrs[$(((j - 1 + k) % cores))]}"); done
  run "bridge$j" --only bridge --bridge-port $((bridge_base + j - 1)) --core-addr "$(IFS=,; echo "${order[*]}")" \
    --tts-addr "127.0.0.1:$tts_port"  # the console's voice menu lists that server's voices
done
echo "cluster ready: console http://127.0.0.1:$bridge_base/#token=$PEROMESH_TOKEN (Ctrl-C stops it)"
wait
