#!/usr/bin/env python3
"""Times the analyst console's heaviest pages on a running server.

Loads HOLDS sellers taken over the same way (each with one held payout), one
seller with EVENTS events, then logs in and times, over loopback, GET of the
queue (every open hold sorted, 200 rows rendered), that seller's account
page and the campaign page, REPEAT times each; prints p50, p95 and max in
milliseconds. Meanwhile nothing else runs, so this is render time plus one
loopback round trip.

  custos users add bench --role viewer --data-dir D   (CUSTOS_PASSWORD=...)
  custos serve --data-dir D --listen 127.0.0.1:PORT
  scripts/console-bench.py http://127.0.0.1:PORT PASSWORD

--top-up, for a data directory that already holds a history (the 10,000-seller
simulation replayed into it): adds only the takeovers that bring the open
holds to HOLDS, in campaigns of CAMPAIGN sellers each (every group its own
mule, address and device), and the EVENTS-event seller only if no account of
--history (the replayed NDJSON) has that many; times the account with the
most events and the campaign closest to CAMPAIGN accounts.

--load-rate R --custos BIN: also decides events meanwhile. First
`BIN bench http --url URL --rate R --duration LOAD_SECONDS` alone, then the
same again while the pages are requested one after the other, round robin,
from 3 seconds after it starts until it ends; prints the load's own report
(requests/s, latency quantiles) for both, and the pages' figures under load.
"""
import argparse
import collections
import datetime
import http.client
import json
import re
import subprocess
import time
import urllib.parse

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("url")
parser.add_argument("password")
parser.add_argument("--holds", type=int, default=1000)
parser.add_argument("--events", type=int, default=5000)
parser.add_argument("--repeat", type=int, default=200)
parser.add_argument("--campaign", type=int, default=0,
                    help="accounts per synthetic campaign (0: all takeovers in one)")
parser.add_argument("--top-up", action="store_true")
parser.add_argument("--history", help="the NDJSON replayed into the data directory (with --top-up)")
parser.add_argument("--load-rate", type=int, default=0)
parser.add_argument("--load-seconds", type=int, default=60)
parser.add_argument("--custos", default="target/release/custos")
args = parser.parse_args()
BATCH = 1000
KEY = {"Authorization": "Bearer custos-dev-key"}
host = urllib.parse.urlsplit(args.url).netloc
conn = http.client.HTTPConnection(host)


def request(method, path, body=None, headers=None):
    global conn
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closes a connection left idle (the load alone
            # runs for a minute): open another, once.
            conn.close()
            conn = http.client.HTTPConnection(host)
            if attempt == 2:
                raise


def at(day, secs):
    t = datetime.datetime(2018, 5, 1, tzinfo=datetime.timezone.utc)
    return (t + datetime.timedelta(days=day, seconds=secs)).strftime("%Y-%m-%dT%H:%M:%SZ")


def story(account, amount, group):
    events = []
    for day in range(10):
        events.append({"event_id": f"{account}-home-{day}", "type": "login", "account_id": account,
                       "time": at(day, 0), "status": "success", "session_id": f"{account}-h{day}",
                       "ip": "81.2.69.160", "device_id": "laptop"})
    events.append({"event_id": f"{account}-atk-login", "type": "login", "account_id": account,
                   "time": at(20, 0), "status": "success", "session_id": "atk",
                   "ip": f"185.220.{101 + group}.4", "device_id": f"box{group}"})
    events.append({"event_id": f"{account}-atk-change", "type": "payout_destination_change",
                   "account_id": account, "time": at(20, 60), "session_id": "atk",
                   "destination": {"institution_id": "23-69-72", "institution_type": "e_money",
                                   "country": "GB", "account_number": f"4000 {1234 + group}"}})
    events.append({"event_id": f"{account}-atk-payout", "type": "payout", "account_id": account,
                   "time": at(21, 0), "payout_id": "p1", "amount": amount, "currency": "GBP"})
    return events


def send(events):
    for i in range(0, len(events), BATCH):
        status, _, body = request("POST", "/v1/events", json.dumps(events[i:i + BATCH]),
                                  {"Content-Type": "application/json", **KEY})
        assert status == 200, body[:300]


def open_holds():
    status, _, body = request("GET", "/v1/holds?limit=1", headers=KEY)
    assert status == 200, body[:300]
    return json.loads(body)["open"]


def busiest_in_history(path):
    """The account with the most events in the replayed NDJSON, and its count."""
    counts = collections.Counter()
    account = re.compile(rb'"account_id":"([^"]*)"')
    with open(path, "rb") as lines:
        for line in lines:
            found = account.search(line)
            if found:
                counts[found.group(1)] += 1
    name, count = counts.most_common(1)[0]
    return name.decode(), count


# One long-lived seller: EVENTS sales and logins over a year.
def old_event(i):
    event = {"event_id": f"old-{i}", "account_id": "old",
             "time": at(i * 365 // args.events, i % 86_000)}
    if i % 2:
        event.update(type="sale", amount=1000, currency="GBP")
    else:
        event.update(type="login", status="success", ip="81.2.69.160", device_id="laptop")
    return event


takeovers, account = args.holds, "old"
if args.top_up:
    takeovers = max(0, args.holds - open_holds())
    if args.history:
        busiest, count = busiest_in_history(args.history)
        print(f"busiest account in the history: {busiest}, {count} events")
        if count >= args.events:
            account = busiest
group_size = args.campaign or max(takeovers, 1)
events = []
for n in range(takeovers):
    events += story(f"s{n:05}", 1000 + 37 * n, n // group_size)
send(events)
print(f"added {takeovers} taken-over sellers with a held payout")
if account == "old":
    send([old_event(i) for i in range(args.events)])
    print(f"added seller old with {args.events} events")

status, headers, body = request("GET", "/console/login")
login_cookie = next(v.split(";")[0] for k, v in headers if k.lower() == "set-cookie")
csrf = re.search(rb'name="csrf" value="([0-9a-f]+)"', body).group(1).decode()
form = urllib.parse.urlencode({"name": "bench", "password": args.password, "csrf": csrf})
status, headers, body = request("POST", "/console/login", form,
                                {"Content-Type": "application/x-www-form-urlencoded",
                                 "Cookie": login_cookie})
assert status == 303, body[:300]
session = next(v.split(";")[0] for k, v in headers
               if k.lower() == "set-cookie" and v.startswith("custos_session="))

print(f"open holds: {open_holds()}")
status, _, body = request("GET", "/v1/campaigns", headers=KEY)
campaigns = json.loads(body)["campaigns"]
if args.campaign:
    campaign = min(campaigns, key=lambda c: abs(c.get("accounts", 0) - args.campaign))
else:
    campaign = max(campaigns, key=lambda c: c.get("accounts", 0))
print(f"campaign timed: {campaign['id']}, {campaign.get('accounts')} accounts "
      f"(largest: {max(c.get('accounts', 0) for c in campaigns)}, {len(campaigns)} campaigns)")

pages = [("queue", "/console/queue"),
         (f"account ({account}, first page)", f"/console/accounts/{urllib.parse.quote(account)}"),
         ("campaign", f"/console/campaigns/{campaign['id']}")]


def get(path):
    start = time.perf_counter()
    status, _, body = request("GET", path, headers={"Cookie": session})
    elapsed = (time.perf_counter() - start) * 1000
    assert status == 200, (path, status, body[:300])
    return elapsed, len(body)


def report(name, times, size):
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{name}: p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, max {times[-1]:.1f} ms "
          f"({len(times)} requests, {size} bytes)")


def load():
    return subprocess.Popen([args.custos, "bench", "http", "--url", args.url, "--rate",
                             str(args.load_rate), "--duration", str(args.load_seconds)],
                            stdout=subprocess.PIPE, text=True)


if not args.load_rate:
    for name, path in pages:
        times, size = [], 0
        for _ in range(args.repeat):
            elapsed, size = get(path)
            times.append(elapsed)
        report(name, times, size)
else:
    alone = load()
    print("load alone:\n" + alone.communicate()[0].rstrip())
    browsed = load()
    time.sleep(3)
    get(pages[0][1])  # a fresh connection, outside the figures
    times = {name: [] for name, _ in pages}
    sizes = {}
    while browsed.poll() is None:
        for name, path in pages:
            elapsed, sizes[name] = get(path)
            times[name].append(elapsed)
    print("load while browsing:\n" + browsed.communicate()[0].rstrip())
    for name, _ in pages:
        report(f"{name}, under load", times[name], sizes[name])
