#!/usr/bin/env python3
"""Sends one NDJSON history to a single Custos server and to a cluster,
and compares what they decided: the action for each event, the stolen
money each stopped, and the campaigns each found.

    scripts/cluster-compare.py HISTORY.ndjson SINGLE_URL CLUSTER_URL [NODE_URL...]
        [--senders N] [--single-senders N] [--keep-account-order]
        [--kill-at FRACTION --kill-pid-file FILE]
        [--restart-at FRACTION --restart-command CMD]

For BENCHMARKS.md ("Cluster"): a single node (`custos serve`) against a
cluster (`scripts/local-cluster.sh`). Events go 50 per request. By default
the single node gets the history in order, each request after the answer
to the one before: the reference. The cluster gets the same requests from
--senders at once (default 1), each sender on its own node among
CLUSTER_URL and every NODE_URL; --single-senders does the same to the
single node. Concurrent senders send the history window by window (one
request each, then the next window once all are answered); a window is
split by position, or with --keep-account-order by account.
With --kill-at, the process in the pid file is killed with
SIGKILL once that share of the requests was answered, and a sender whose
node does not answer sends the same request to the next node (same event
ids: stored once). --restart-at runs a shell command (e.g.
`scripts/local-cluster.sh start-node DIR 2`) once that share was answered.

Stolen money counts as the backtest's open-loop figure does: payouts and
loan disbursements the history's `truth` marks as fraud, stopped when held
or blocked and not released by a later decision. `truth` and `enrichment`
are dropped before sending, as `custos simulate` writes them. Standard
library only; the development key.
"""

import argparse
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

KEY = "custos-dev-key"
BATCH = 50


def call(url, path, body=None, timeout=120):
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.load(answer)


def record(decisions, batch, answers):
    for event, answer in zip(batch, answers):
        decisions[event["event_id"]] = answer


def send_in_windows(urls, events, senders, keep_account_order, events_at):
    """The history in windows of `senders` requests (one sender: in order,
    one request after another): the requests of a window
    go out at once, one per sender, each sender on its own node (the next
    one when its node does not answer), and the next window after every
    answer. So the senders' skew stays within a window, as with a platform
    sending in real time. Keeping account order, a window's events are
    split by account (sender i sends the accounts hashed to it, in order);
    otherwise by position, so an account's later event may be decided
    before its earlier one in the same window. `events_at` maps a share of
    the windows answered to a callable run once when it is reached."""
    decisions = {}
    nodes = list(range(senders))
    resent = 0
    size = senders * BATCH
    windows = [events[i : i + size] for i in range(0, len(events), size)]
    pending = sorted(events_at.items())

    def send(index, batch):
        nonlocal resent
        for _ in range(100):
            url = urls[nodes[index] % len(urls)]
            try:
                return call(url, "/v1/events", batch, timeout=60)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                resent += 1
                nodes[index] += 1
                time.sleep(0.2)
        raise SystemExit(f"a request of sender {index} was never answered")

    with ThreadPoolExecutor(max_workers=senders) as pool:
        for done, window in enumerate(windows, start=1):
            if keep_account_order:
                shares = [[] for _ in range(senders)]
                for event in window:
                    shares[zlib.crc32(event["account_id"].encode()) % senders].append(event)
            else:
                shares = [window[i : i + BATCH] for i in range(0, len(window), BATCH)]
            work = [(i, share) for i, share in enumerate(shares) if share]
            for (_, share), answers in zip(work, pool.map(lambda w: send(*w), work)):
                record(decisions, share, answers)
            while pending and done >= pending[0][0] * len(windows):
                pending.pop(0)[1]()
    return decisions, resent


def stolen(events, truth, decisions):
    """(attempted, stopped) in minor units, over every currency."""
    attempted = stopped = 0
    held = {}
    released = set()
    for event in events:
        decision = decisions[event["event_id"]]
        for effect in decision.get("effects", []):
            data = effect.get("data", {})
            if effect.get("kind") == "hold.released":
                released.add((data.get("account_id"), data.get("hold_id")))
        money_id = event.get("payout_id") or (
            event.get("loan_id") if event["type"] == "loan_disbursement" else None
        )
        if money_id is None or not truth[event["event_id"]].get("fraud"):
            continue
        amount = event.get("amount", 0)
        attempted += amount
        if decision["action"] == "block":
            stopped += amount
        elif decision["action"] == "hold":
            held[(event["account_id"], money_id)] = amount
    stopped += sum(a for key, a in held.items() if key not in released)
    return attempted, stopped


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def campaigns(url, events, truth):
    """Each campaign found: its accounts, when it was detected, and how many
    accounts the attackers had acted on by then (the victim it was found
    at)."""
    found = []
    for c in call(url, "/v1/campaigns")["campaigns"]:
        detected = when(c["detected_at"])
        victims = {
            e["account_id"]
            for e in events
            if truth[e["event_id"]].get("actor") == "attacker" and when(e["time"]) <= detected
        }
        found.append((c["accounts"], c["detected_at"], c["status"], len(victims)))
    return sorted(found)


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("history")
    parser.add_argument("single")
    parser.add_argument("cluster", nargs="+")
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--keep-account-order", action="store_true")
    parser.add_argument("--single-senders", type=int, default=1)
    parser.add_argument("--kill-at", type=float)
    parser.add_argument("--kill-pid-file")
    parser.add_argument("--restart-at", type=float)
    parser.add_argument("--restart-command")
    args = parser.parse_args()

    events, truth = [], {}
    with open(args.history) as lines:
        for line in lines:
            event = json.loads(line)
            truth[event["event_id"]] = event.pop("truth", None) or {}
            event.pop("enrichment", None)
            events.append(event)

    one, _ = send_in_windows(
        [args.single], events, args.single_senders, args.keep_account_order, {}
    )
    marks = {}
    if args.kill_at is not None:
        pid = int(open(args.kill_pid_file).read().strip())

        def kill():
            os.kill(pid, signal.SIGKILL)
            print(f"killed {pid} after {args.kill_at:.0%} of the requests", flush=True)

        marks[args.kill_at] = kill
    if args.restart_at is not None:

        def restart():
            subprocess.run(args.restart_command, shell=True, check=True)
            print(f"restarted after {args.restart_at:.0%}: {args.restart_command}", flush=True)

        marks[args.restart_at] = restart
    started = time.monotonic()
    many, resent = send_in_windows(
        args.cluster, events, args.senders, args.keep_account_order, marks
    )
    took = time.monotonic() - started

    order = "account order kept" if args.keep_account_order else "windows split by position"
    print(
        f"{len(events)} events; single node: {args.single_senders} senders; "
        f"cluster: {args.senders} senders, {took:.1f} s, {resent} resends; {order}"
    )
    print("single node:", dict(Counter(d["action"] for d in one.values())))
    print("cluster:    ", dict(Counter(d["action"] for d in many.values())))
    reasons = lambda d: [r["code"] for r in d.get("reasons", [])]  # noqa: E731
    actions = [k for k in one if one[k]["action"] != many[k]["action"]]
    differ = [k for k in one if reasons(one[k]) != reasons(many[k])]
    print(f"action differs for {len(actions)}, reasons for {len(differ)}")
    for k in (actions + differ)[:12]:
        print(f"  {k}: single {one[k]['action']} {reasons(one[k])}, "
              f"cluster {many[k]['action']} {reasons(many[k])}")
    for name, decisions in [("single node", one), ("cluster", many)]:
        attempted, stopped = stolen(events, truth, decisions)
        share = stopped / attempted if attempted else float("nan")
        print(f"stolen money stopped, {name}: {stopped} of {attempted} ({share:.1%})")
    expected = campaigns(args.single, events, truth)
    print("campaigns (accounts, detected, status, victims by then):")
    print(f"  single node: {expected}")
    same = True
    for url in args.cluster:
        found = campaigns(url, events, truth)
        close = len(found) == len(expected) and all(
            f[0] == e[0] and abs(f[3] - e[3]) <= 1 for f, e in zip(found, expected)
        )
        same &= close
        print(f"  {url}: {'the same' if found == expected else found}")
    print("campaigns found at the same victim (±1) on every node:", same)
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
