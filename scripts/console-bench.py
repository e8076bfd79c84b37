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
"""
import datetime
import http.client
import json
import re
import sys
import time
import urllib.parse

HOLDS, EVENTS, REPEAT, BATCH = 1000, 5000, 200, 1000
base, password = sys.argv[1], sys.argv[2]
host = urllib.parse.urlsplit(base).netloc
conn = http.client.HTTPConnection(host)


def request(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    answer = conn.getresponse()
    return answer.status, answer.getheaders(), answer.read()


def at(day, secs):
    t = datetime.datetime(2018, 5, 1, tzinfo=datetime.timezone.utc)
    return (t + datetime.timedelta(days=day, seconds=secs)).strftime("%Y-%m-%dT%H:%M:%SZ")


def story(account, amount):
    events = []
    for day in range(10):
        events.append({"event_id": f"{account}-home-{day}", "type": "login", "account_id": account,
                       "time": at(day, 0), "status": "success", "session_id": f"{account}-h{day}",
                       "ip": "81.2.69.160", "device_id": "laptop"})
    events.append({"event_id": f"{account}-atk-login", "type": "login", "account_id": account,
                   "time": at(20, 0), "status": "success", "session_id": "atk",
                   "ip": "185.220.101.4", "device_id": "box"})
    events.append({"event_id": f"{account}-atk-change", "type": "payout_destination_change",
                   "account_id": account, "time": at(20, 60), "session_id": "atk",
                   "destination": {"institution_id": "23-69-72", "institution_type": "e_money",
                                   "country": "GB", "account_number": "4000 1234"}})
    events.append({"event_id": f"{account}-atk-payout", "type": "payout", "account_id": account,
                   "time": at(21, 0), "payout_id": "p1", "amount": amount, "currency": "GBP"})
    return events


def send(events):
    for i in range(0, len(events), BATCH):
        status, _, body = request("POST", "/v1/events", json.dumps(events[i:i + BATCH]),
                                  {"Content-Type": "application/json",
                                   "Authorization": "Bearer custos-dev-key"})
        assert status == 200, body[:300]


events = []
for n in range(HOLDS):
    events += story(f"s{n:05}", 1000 + 37 * n)
send(events)
# One long-lived seller: EVENTS sales and logins over a year.
def old_event(i):
    event = {"event_id": f"old-{i}", "account_id": "old", "time": at(i * 365 // EVENTS, i % 86_000)}
    if i % 2:
        event.update(type="sale", amount=1000, currency="GBP")
    else:
        event.update(type="login", status="success", ip="81.2.69.160", device_id="laptop")
    return event


send([old_event(i) for i in range(EVENTS)])

status, headers, body = request("GET", "/console/login")
login_cookie = next(v.split(";")[0] for k, v in headers if k.lower() == "set-cookie")
csrf = re.search(rb'name="csrf" value="([0-9a-f]+)"', body).group(1).decode()
form = urllib.parse.urlencode({"name": "bench", "password": password, "csrf": csrf})
status, headers, body = request("POST", "/console/login", form,
                                {"Content-Type": "application/x-www-form-urlencoded",
                                 "Cookie": login_cookie})
assert status == 303, body[:300]
session = next(v.split(";")[0] for k, v in headers
               if k.lower() == "set-cookie" and v.startswith("custos_session="))

status, _, body = request("GET", "/v1/holds?limit=1", headers={"Authorization": "Bearer custos-dev-key"})
print(f"open holds: {json.loads(body)['open']}")
status, _, body = request("GET", "/v1/campaigns", headers={"Authorization": "Bearer custos-dev-key"})
campaigns = json.loads(body)["campaigns"]
campaign = max(campaigns, key=lambda c: c.get("accounts", 0))
print(f"largest campaign: {campaign['id']}, {campaign.get('accounts')} accounts")

for name, path in [("queue", "/console/queue"), ("account (5,000 events, first page)", "/console/accounts/old"),
                   ("campaign", f"/console/campaigns/{campaign['id']}")]:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        status, _, body = request("GET", path, headers={"Cookie": session})
        times.append((time.perf_counter() - start) * 1000)
        assert status == 200, (path, status, body[:300])
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{name}: p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, max {times[-1]:.1f} ms ({len(body)} bytes)")
