#!/usr/bin/env bash
# `make demo`: starts a backend (embedded SQLite, built-in rules) and a sensor
# on this host, prints the web page's address and the API token, triggers a
# harmless finding (a DNS lookup of GuardDuty's public test domain) and shows
# findings as they arrive. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "the sensor loads eBPF probes: run make demo as root" >&2; exit 1; }

data=${VIGIL_DEMO_DIR:-$PWD/vigil-data/demo}
mkdir -p "$data"
export VIGIL_API_TOKEN=${VIGIL_API_TOKEN:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}
export VIGIL_SENSOR_TOKEN=${VIGIL_SENSOR_TOKEN:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}
http=${VIGIL_DEMO_HTTP:-127.0.0.1:8080}
grpc=${VIGIL_DEMO_GRPC:-127.0.0.1:7443}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The demo listens on loopback only, so plaintext is acceptable here; real
# deployments use --tls-cert/--tls-key (see docs/deploy-*.md).
bin/backend --insecure --grpc-listen "$grpc" --http-listen "$http" \
  --store "sqlite://$data/vigil.db" >"$data/backend.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fsS "http://$http/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://$http/healthz" >/dev/null || { echo "backend did not start; see $data/backend.log" >&2; tail -20 "$data/backend.log" >&2; exit 1; }

bin/sensor --insecure --backend "$grpc" --spool-dir "$data/spool" >"$data/sensor.log" 2>&1 &
pids+=($!)
sleep 3
kill -0 "${pids[1]}" 2>/dev/null || { echo "sensor did not start; see $data/sensor.log" >&2; tail -20 "$data/sensor.log" >&2; exit 1; }

cat <<MSG

  Vigil is running.
    web page:   http://$http/#token=$VIGIL_API_TOKEN
    API token:  $VIGIL_API_TOKEN
    logs:       $data/backend.log, $data/sensor.log

  Triggering a harmless finding: a DNS lookup of guarddutyc2activityb.com
  (GuardDuty's public test domain; the lookup itself may fail offline).
  Findings appear below as they arrive. Ctrl-C stops the demo.

MSG
(getent hosts guarddutyc2activityb.com >/dev/null 2>&1 || true) &

seen=""
while true; do
  list=$(bin/backend findings list --server "http://$http" 2>/dev/null || true)
  if [[ -n $list && $list != "$seen" ]]; then
    clear 2>/dev/null || true
    echo "web page: http://$http/#token=$VIGIL_API_TOKEN   (Ctrl-C stops)"
    echo
    echo "$list"
    seen=$list
  fi
  sleep 2
done
