#!/bin/sh
# Times a campaign's evidence pack, offline and over HTTP, RUNS times each.
#
#   scripts/evidence-bench.sh CUSTOS DATA_DIR CAMPAIGN_ID [RUNS]
#
# Offline: `custos evidence export` under /usr/bin/time -v (wall time, peak
# resident memory), then `custos evidence verify` of the pack, and the rows
# of money-trail.csv and victims.csv (header left out). Over HTTP: starts
# `custos serve` on the data directory, and for each run downloads
# GET /v1/campaigns/ID/evidence with the development key while reading the
# server's VmRSS every 50 ms from /proc; prints the resident memory before,
# the highest seen during, after, and the process's VmHWM. Stops the server
# it started at the end. Needs curl and tar.
set -eu
custos=$1 data=$2 id=$3 runs=${4:-3}
port=${PORT:-18742}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/status"; }

i=1
while [ "$i" -le "$runs" ]; do
    /usr/bin/time -v "$custos" evidence export --campaign "$id" --out "$out/pack.tar" \
        --data-dir "$data" > "$out/export.txt" 2> "$out/time.txt"
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/time.txt")
    peak=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/time.txt")
    echo "export $i: wall $wall, peak RSS $((peak / 1024)) MiB, pack $(stat -c %s "$out/pack.tar") bytes"
    i=$((i + 1))
done
"$custos" evidence verify "$out/pack.tar" | tail -n 1
mkdir "$out/pack" && tar xf "$out/pack.tar" -C "$out/pack"
# Rows, not lines: a quoted cell may hold a line break.
python3 - "$out/pack" <<'EOF'
import csv, sys
for name in ("money-trail.csv", "victims.csv"):
    with open(f"{sys.argv[1]}/{name}", newline="") as f:
        print(f"{name}: {sum(1 for _ in csv.reader(f)) - 1} rows")
with open(f"{sys.argv[1]}/events.ndjson", "rb") as f:
    print(f"events.ndjson: {sum(1 for _ in f)} events")
EOF

CUSTOS_LOG=warn "$custos" serve --data-dir "$data" --listen "127.0.0.1:$port" &
server=$!
until curl -fs "http://127.0.0.1:$port/readyz" > /dev/null 2>&1; do
    kill -0 "$server"
    sleep 0.2
done
i=1
while [ "$i" -le "$runs" ]; do
    before=$(kib VmRSS "$server")
    start=$(date +%s.%N)
    curl -fs -H "Authorization: Bearer custos-dev-key" \
        "http://127.0.0.1:$port/v1/campaigns/$id/evidence" -o "$out/http.tar" &
    download=$!
    during=$before
    while kill -0 "$download" 2> /dev/null; do
        now=$(kib VmRSS "$server")
        [ "$now" -gt "$during" ] && during=$now
        sleep 0.05
    done
    wait "$download"
    end=$(date +%s.%N)
    echo "http $i: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s, RSS before $((before / 1024)) MiB," \
        "during at most $((during / 1024)) MiB, after $(($(kib VmRSS "$server") / 1024)) MiB," \
        "VmHWM $(($(kib VmHWM "$server") / 1024)) MiB, pack $(stat -c %s "$out/http.tar") bytes"
    i=$((i + 1))
done
kill "$server"
wait "$server" || true
