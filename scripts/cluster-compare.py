#!/usr/bin/env python3
"""Sends one NDJSON history, in order, to two Custos servers and compares
their answers event by event, and the campaigns each found.

    scripts/cluster-compare.py HISTORY.ndjson SINGLE_URL CLUSTER_URL [NODE_URL...]

For BENCHMARKS.md ("Cluster"): a single node (`custos serve`) against one
node of a cluster (`scripts/local-cluster.sh`); the campaigns of any other
NODE_URL are compared too. Events go 50 per request, each request after
the answer to the one before; `truth` and `enrichment` are dropped as
`custos simulate` writes them. Standard library only; the development key.
"""

import json
import sys
import urllib.request
from collections import Counter

KEY = "custos-dev-key"
BATCH = 50


def call(url, path, body=None):
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)


def send(url, events):
    decisions = {}
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        for event, answer in zip(batch, call(url, "/v1/events", batch)):
            decisions[event["event_id"]] = (
                answer["action"],
                [reason["code"] for reason in answer.get("reasons", [])],
            )
    return decisions


def campaigns(url):
    return sorted(
        (c["accounts"], c["detected_at"], c["status"], tuple(c["institutions"]))
        for c in call(url, "/v1/campaigns")["campaigns"]
    )


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    history, single, cluster, others = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    events = []
    with open(history) as lines:
        for line in lines:
            event = json.loads(line)
            event.pop("truth", None)
            event.pop("enrichment", None)
            events.append(event)
    one = send(single, events)
    many = send(cluster, events)
    actions = [k for k in one if one[k][0] != many[k][0]]
    reasons = [k for k in one if one[k][1] != many[k][1]]
    print(f"{len(events)} events")
    print("single node:", dict(Counter(a for a, _ in one.values())))
    print("cluster:    ", dict(Counter(a for a, _ in many.values())))
    print(f"action differs for {len(actions)}, reasons for {len(reasons)}")
    for k in reasons[:10]:
        print(f"  {k}: single {one[k]}, cluster {many[k]}")
    expected = campaigns(single)
    print("campaigns (accounts, detected, status, institutions):", expected)
    same = True
    for url in [cluster] + others:
        found = campaigns(url)
        same &= found == expected
        print(f"  {url}: {'the same' if found == expected else found}")
    sys.exit(0 if not actions and same else 1)


if __name__ == "__main__":
    main()
