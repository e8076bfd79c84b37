#!/usr/bin/env bash
# A cluster on one machine, for trying cluster mode and for the figures in
# BENCHMARKS.md ("Cluster"): three nats-server processes forming a JetStream
# cluster, and three `custos serve --cluster` nodes on them.
#
#   scripts/local-cluster.sh start DIR [BIN]   # BIN: target/release/custos
#   scripts/local-cluster.sh stop DIR
#   scripts/local-cluster.sh start-node DIR N [BIN]   # (re)start node N only
#
# Ports: NATS clients 14221-14223, NATS routes 16221-16223, nodes
# 127.0.0.1:18081-18083 (the development key works on loopback). Node N's
# data is in DIR/dataN, its log in DIR/nodeN.log; each node's config is
# DIR/nodeN.toml (16 partitions, 3 replicas, lease_ttl 3s).
set -euo pipefail
command="${1:?start or stop}"
dir="${2:?a directory for the data and logs of the servers}"
bin="${3:-target/release/custos}"
nats="$(command -v nats-server || echo /usr/sbin/nats-server)"

# Nodes first, so that they can hand their partitions over; each process
# is waited for (up to 15 s), so that a new start finds its port free.
stop() {
  for f in "$dir"/node*.pid "$dir"/nats*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$f"
  done
}

start_node() {
  local i="$1"
  cat >"$dir/node$i.toml" <<TOML
listen = "127.0.0.1:1808$i"
data_dir = "$dir/data$i"
[cluster]
nats_urls = ["nats://127.0.0.1:14221", "nats://127.0.0.1:14222", "nats://127.0.0.1:14223"]
node_id = "node$i"
partitions = 16
replicas = 3
lease_ttl = "3s"
TOML
  CUSTOS_TOKEN_KEY="${CUSTOS_TOKEN_KEY:-local-cluster-token-key-0123456789}" \
  CUSTOS_PII_KEY="${CUSTOS_PII_KEY:-local-cluster-pii-key-0123456789}" \
    "$bin" serve --cluster --config "$dir/node$i.toml" >>"$dir/node$i.log" 2>&1 &
  echo $! >"$dir/node$i.pid"
}

wait_ready() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:1808$1/readyz" >/dev/null && return
    sleep 0.2
  done
}

case "$command" in
  stop)
    stop
    ;;
  start)
    mkdir -p "$dir"
    stop
    for i in 1 2 3; do
      routes=""
      for j in 1 2 3; do
        [ "$j" = "$i" ] || routes="$routes,nats://127.0.0.1:1622$j"
      done
      mkdir -p "$dir/nats$i"
      "$nats" -a 127.0.0.1 -p "1422$i" -n "n$i" -js -sd "$dir/nats$i" \
        --cluster_name custos-local --cluster "nats://127.0.0.1:1622$i" \
        --routes "${routes#,}" >"$dir/nats$i.log" 2>&1 &
      echo $! >"$dir/nats$i.pid"
    done
    sleep 3
    for i in 1 2 3; do
      start_node "$i"
    done
    for i in 1 2 3; do
      wait_ready "$i"
    done
    "$bin" cluster status --config "$dir/node1.toml" | head -6
    ;;
  start-node)
    bin="${4:-target/release/custos}"
    start_node "${3:?a node number, 1 to 3}"
    wait_ready "$3"
    ;;
  *)
    echo "usage: $0 start|stop DIR [BIN] or start-node DIR N [BIN]" >&2
    exit 2
    ;;
esac
