#!/usr/bin/env bash
# Browser tests of the analyst console in real headless browsers: the whole
# suite (tests/browser/console.mjs) in Chromium, and the core flows
# (tests/browser/firefox.mjs, run first) in Firefox, against the debug binary on a free loopback port, with a
# throwaway data directory holding a few held payouts, a campaign and one
# user per role. Screenshots are written to docs/img/console-*.png (or to
# $SHOTS).
#
# Needs node and npm; installs Debian's chromium and firefox-esr when they
# are missing (as root), and playwright-core and puppeteer-core (pinned in
# tests/browser/package.json) into a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

chromium_path="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$chromium_path" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing and this is not root: install Debian's chromium package" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  chromium_path="$(command -v chromium)"
fi
firefox_path="$(command -v firefox-esr || command -v firefox || true)"
if [ -z "$firefox_path" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "firefox is missing and this is not root: install Debian's firefox-esr package" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends firefox-esr >/dev/null
  firefox_path="$(command -v firefox-esr)"
fi

cargo build -p custos --locked
custos="${CARGO_TARGET_DIR:-$root/target}/debug/custos"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cp tests/browser/package.json tests/browser/console.mjs tests/browser/firefox.mjs "$work/"
(cd "$work" && npm install --silent --no-audit --no-fund >/dev/null)

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
password="browser-test-password-0123"
for pair in vera:viewer ana:analyst lea:lead adm:admin; do
  CUSTOS_PASSWORD="$password" "$custos" users --data-dir "$work/data" add "${pair%%:*}" --role "${pair##*:}" >/dev/null
done
"$custos" serve --listen "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/server.log" &
server_pid=$!
python3 - "$base" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the server did not become ready")
PY

# Three sellers taken over the same way (one campaign), paid out 200, 9,000
# and 3,000; and two with hostile ids, whose payout changes came from the
# attacker's address and device.
python3 - "$base" <<'PY'
import datetime, json, sys, urllib.request

base = sys.argv[1]

def at(day, secs):
    t = datetime.datetime(2018, 5, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(days=day, seconds=secs)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")

def story(account, amount, change_from_attacker=False):
    events = []
    for day in range(10):
        events.append({"event_id": f"{account}-home-{day}", "type": "login", "account_id": account,
                       "time": at(day, 0), "status": "success", "session_id": f"{account}-h{day}",
                       "ip": "81.2.69.160", "device_id": "laptop"})
        events.append({"event_id": f"{account}-sale-{day}", "type": "sale", "account_id": account,
                       "time": at(day, 60), "amount": 10000, "currency": "GBP", "session_id": f"{account}-h{day}"})
    events.append({"event_id": f"{account}-atk-login", "type": "login", "account_id": account,
                   "time": at(20, 0), "status": "success", "session_id": "atk", "ip": "185.220.101.4", "device_id": "box"})
    events.append({"event_id": f"{account}-atk-change", "type": "payout_destination_change", "account_id": account,
                   "time": at(20, 60), "session_id": "atk",
                   "destination": {"institution_id": "23-69-72", "institution_type": "e_money", "country": "GB",
                                   "account_number": "4000 1234"}})
    if change_from_attacker:
        # The change itself from the attacker's address and device: the
        # campaign graph then shows those shared too.
        events[-1].update({"ip": "185.220.101.4", "device_id": "box"})
    events.append({"event_id": f"{account}-atk-payout", "type": "payout", "account_id": account,
                   "time": at(21, 0), "payout_id": "p1", "amount": amount, "currency": "GBP"})
    return events

events = []
for account, amount in [("small", 20000), ("large", 900000), ("middle", 300000)]:
    events += story(account, amount)
for account, amount in [("<script>alert(1)</script>", 50000), ('"><img src=x onerror=alert(1)>', 40000)]:
    events += story(account, amount, change_from_attacker=True)
request = urllib.request.Request(base + "/v1/events", data=json.dumps(events).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer custos-dev-key"})
with urllib.request.urlopen(request) as answer:
    decisions = json.load(answer)
held = sum(1 for d in decisions if d.get("action") == "hold")
print(f"{len(events)} events sent, {held} payouts held")
PY

# Firefox first: its checks read the held payouts that the Chromium suite
# later releases.
BASE="$base" FIREFOX="$firefox_path" PASSWORD="$password" node "$work/firefox.mjs"
BASE="$base" CHROMIUM="$chromium_path" SHOTS="${SHOTS:-$root/docs/img}" PASSWORD="$password" \
  node "$work/console.mjs"
