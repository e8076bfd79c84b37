"""Sift's official Python client against a running Custos.

The client is used exactly as a platform uses it with Sift; only its
`api_url` points at Custos. Every call's answer is checked. Any failed check
or unexpected exception exits non-zero; nothing is skipped.

Environment:
    CUSTOS_URL      base URL of a running `custos serve`, e.g. http://127.0.0.1:8080
    CUSTOS_API_KEY  one of its API keys

The story: a seller with ten days of ordinary logins is taken over; the
attacker changes the payout bank account and asks for a withdrawal, which
Custos holds. Then scores, labels, unlabel, and the Decisions API.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import requests
import sift
from sift.exceptions import ApiException

BASE = os.environ["CUSTOS_URL"].rstrip("/")
KEY = os.environ["CUSTOS_API_KEY"]
# Sift's account id, for the v3 routes; Custos takes any.
SIFT_ACCOUNT = "custos-ci"
# Unique per run, so a reused data directory cannot mask a failure.
RUN = str(int(time.time()))
SELLER = f"seller-{RUN}"
LABELLED = f"labelled-{RUN}"
DAY_MS = 86_400_000
# 2018-05-01, in milliseconds: Sift's $time.
START_MS = 1_525_132_800_000
ACTIONS = {"allow", "challenge", "review", "hold", "block"}

client = sift.Client(api_key=KEY, api_url=BASE, account_id=SIFT_ACCOUNT, timeout=10)
checks = 0


def check(condition: bool, message: str) -> None:
    global checks
    checks += 1
    if not condition:
        raise AssertionError(message)


def at(day: int, seconds: int = 0) -> int:
    return START_MS + day * DAY_MS + seconds * 1000


def custos(path: str) -> dict:
    """Reads Custos's own API (bearer token), to see what a call did."""
    response = requests.get(
        f"{BASE}{path}", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    check(response.status_code == 200, f"GET {path}: {response.status_code} {response.text}")
    return response.json()


def ok(response: sift.client.Response, what: str) -> dict:
    check(response.is_ok(), f"{what}: not ok: {response}")
    check(response.http_status_code == 200, f"{what}: http {response.http_status_code}")
    body = response.body or {}
    check(body.get("status") == 0, f"{what}: status {body.get('status')}: {body}")
    return body


def in_unit_range(scores: dict, what: str) -> None:
    check(bool(scores), f"{what}: no scores")
    for abuse_type, value in scores.items():
        score = value["score"]
        check(0.0 <= score <= 1.0, f"{what}: {abuse_type} score {score} outside [0, 1]")


def decision_ids(score_response: dict) -> list[str]:
    ids = []
    for status in score_response["workflow_statuses"]:
        for entry in status["history"]:
            if entry["app"] == "decision":
                ids.append(entry["config"]["decision_id"])
    return ids


def event_types(body: dict) -> list[str]:
    return [e["type"] for e in body["custos"]["events"]]


def sift_error(call, status: int, what: str) -> ApiException:
    try:
        call()
    except ApiException as e:
        check(e.api_status == status, f"{what}: api_status {e.api_status}, wanted {status}")
        check(e.http_status_code == 400, f"{what}: http {e.http_status_code}")
        check(bool(e.api_error_message), f"{what}: no error_message")
        return e
    raise AssertionError(f"{what}: no error")


def ach(routing: str, last5: str) -> list[dict]:
    return [
        {
            "$payment_type": "$ach_credit",
            "$routing_number": routing,
            "$account_number_last5": last5,
            "$account_holder_name": "Jane Seller",
        }
    ]


def test_track_takeover_story() -> None:
    body = ok(
        client.track(
            "$create_account",
            {
                "$user_id": SELLER,
                "$time": at(0),
                "$session_id": f"{SELLER}-home-0",
                "$ip": "81.2.69.160",
                "$user_email": "jane@example.com",
                "$app": {"$device_unique_id": "laptop-1"},
                "$payment_methods": ach("072403005", "12345"),
                "shop_name": "Jane's ceramics",
            },
        ),
        "$create_account",
    )
    check(event_types(body) == ["login", "payout_destination_change"], f"$create_account: {body}")
    check("$api_key" not in body["request"], "the key is echoed back")
    stored = custos(f"/v1/events/{body['custos']['events'][0]['event_id']}")
    check(stored["event"]["attributes"]["shop_name"] == "Jane's ceramics", f"custom field: {stored}")

    for day in range(1, 10):
        body = ok(
            client.track(
                "$login",
                {
                    "$user_id": SELLER,
                    "$time": at(day),
                    "$session_id": f"{SELLER}-home-{day}",
                    "$ip": "81.2.69.160",
                    "$login_status": "$success",
                    "$app": {"$device_unique_id": "laptop-1"},
                },
            ),
            "home $login",
        )
        check(body["custos"]["events"][0]["action"] == "allow", f"home login: {body}")

    # The attacker's login, with every flag of track().
    body = ok(
        client.track(
            "$login",
            {
                "$user_id": SELLER,
                "$time": at(20),
                "$session_id": "attacker",
                "$ip": "185.220.101.4",
                "$login_status": "$success",
                "$browser": {"$user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/60.0"},
                "$app": {"$device_unique_id": "unknown-pc"},
            },
            return_score=True,
            return_action=True,
            return_workflow_status=True,
        ),
        "attacker $login",
    )
    score_response = body["score_response"]
    check(score_response["status"] == 0, f"score_response: {score_response}")
    check(score_response["user_id"] == SELLER, f"score_response user: {score_response}")
    in_unit_range(score_response["scores"], "attacker $login")
    check(decision_ids(score_response) == ["challenge"], f"attacker login decision: {score_response}")
    check(
        score_response["actions"][0]["action"]["id"] == "challenge",
        f"attacker login actions: {score_response['actions']}",
    )

    # The payout bank account changed in the attacker's session.
    body = ok(
        client.track(
            "$update_account",
            {
                "$user_id": SELLER,
                "$time": at(20, 60),
                "$session_id": "attacker",
                "$ip": "185.220.101.4",
                "$payment_methods": ach("021000021", "99881"),
            },
            return_workflow_status=True,
        ),
        "$update_account",
    )
    check(event_types(body) == ["payout_destination_change"], f"$update_account: {body}")
    check(decision_ids(body["score_response"]) == ["hold"], f"destination change: {body}")
    account = custos(f"/v1/accounts/{SELLER}")
    check(account["destination"]["destination"]["account_last4"] == "9881", f"destination: {account}")
    check(account.get("at_risk") is not None, f"account at risk: {account}")

    # The withdrawal the next day: a payout, held by Custos's rules.
    withdrawal = {
        "$user_id": SELLER,
        "$time": at(21),
        "$transaction_type": "$withdrawal",
        "$transaction_status": "$pending",
        "$transaction_id": f"wd-{RUN}",
        "$amount": 1_250_000_000,
        "$currency_code": "USD",
    }
    body = ok(
        client.track(
            "$transaction",
            withdrawal,
            return_score=True,
            return_workflow_status=True,
            abuse_types=["payment_abuse"],
        ),
        "$withdrawal",
    )
    score_response = body["score_response"]
    check(set(score_response["scores"]) == {"payment_abuse"}, f"abuse_types: {score_response}")
    in_unit_range(score_response["scores"], "$withdrawal")
    check(score_response["scores"]["payment_abuse"]["score"] >= 0.8, f"payment score: {score_response}")
    check(decision_ids(score_response) == ["hold"], f"withdrawal decision: {score_response}")
    status = score_response["workflow_statuses"][0]
    check(status["entity"] == {"type": "user", "id": SELLER}, f"workflow entity: {status}")
    holds = custos(f"/v1/holds?account_id={SELLER}")
    check([h["hold_id"] for h in holds["holds"]] == [f"wd-{RUN}"], f"holds: {holds}")
    check(holds["holds"][0]["amount"] == 125_000, f"micros to cents: {holds}")

    # Its $success is the same payout: answered from the log.
    withdrawal["$transaction_status"] = "$success"
    withdrawal["$time"] = at(21, 30)
    body = ok(client.track("$transaction", withdrawal), "$withdrawal $success")
    check(body["custos"]["events"][0].get("duplicate") is True, f"same payout: {body}")
    check(len(custos(f"/v1/holds?account_id={SELLER}")["holds"]) == 1, "one hold")


def test_scores() -> None:
    body = ok(client.score(SELLER), "score")
    check(body["user_id"] == SELLER, f"score user: {body}")
    in_unit_range(body["scores"], "score")
    check(set(body["scores"]) == {"account_takeover", "payment_abuse"}, f"score types: {body}")
    check(body["scores"]["account_takeover"]["score"] >= 0.7, f"an account at risk: {body}")
    only = ok(client.score(SELLER, abuse_types=["account_takeover"]), "score abuse_types")
    check(set(only["scores"]) == {"account_takeover"}, f"score abuse_types: {only}")

    body = ok(client.get_user_score(SELLER), "get_user_score")
    check(body["entity_type"] == "user" and body["entity_id"] == SELLER, f"get_user_score: {body}")
    in_unit_range(body["scores"], "get_user_score")
    rescored = ok(client.rescore_user(SELLER), "rescore_user")
    check(rescored["scores"] == body["scores"], f"rescore_user: {rescored}")

    unknown = f"nobody-{RUN}"
    try:
        client.score(unknown)
        raise AssertionError("score of an unknown user")
    except ApiException as e:
        check(e.api_status == 54, f"unknown user: {e.api_status}")


def test_bad_key_and_unsupported_events() -> None:
    wrong = sift.Client(api_key="not-a-configured-key-0123", api_url=BASE, timeout=10)
    e = sift_error(
        lambda: wrong.track("$login", {"$user_id": SELLER, "$login_status": "$success"}),
        51,
        "track with a bad key",
    )
    check("not-a-configured-key" not in str(e.body), "the bad key is echoed back")
    sift_error(lambda: wrong.score(SELLER), 51, "score with a bad key")
    sift_error(lambda: wrong.get_user_score(SELLER), 51, "get_user_score with a bad key")
    sift_error(
        lambda: client.track("$create_order", {"$user_id": SELLER, "$order_id": "o-1"}),
        53,
        "unsupported $type",
    )
    sift_error(
        lambda: client.track(
            "$login", {"$user_id": SELLER, "$login_status": "$success", "$order_id": "o-1"}
        ),
        105,
        "unsupported reserved field",
    )


def test_label_and_unlabel() -> None:
    ok(
        client.track(
            "$login",
            {"$user_id": LABELLED, "$login_status": "$success", "$ip": "81.2.69.160"},
        ),
        "login before label",
    )
    body = ok(
        client.label(
            LABELLED,
            {
                "$is_bad": True,
                "$abuse_type": "account_takeover",
                "$description": "the seller reported the takeover",
                "$source": "support",
                "$analyst": "analyst@example.com",
            },
        ),
        "label",
    )
    stored = custos(f"/v1/events/{body['custos']['events'][0]['event_id']}")
    check(stored["event"]["label"] == "compromise_reported", f"label: {stored}")
    check(custos(f"/v1/accounts/{LABELLED}").get("at_risk") is not None, "a bad label puts at risk")

    response = client.unlabel(LABELLED, abuse_type="account_takeover")
    check(response.is_ok() and response.http_status_code == 204, f"unlabel: {response}")
    account = custos(f"/v1/accounts/{LABELLED}")
    check(account.get("at_risk") is None, f"unlabel ends the risk: {account}")
    check(account["recent_events"][0]["type"] == "analyst_action", f"unlabel recorded: {account}")


def test_decisions() -> None:
    body = client.get_decisions("user", abuse_types=("payment_abuse",)).body
    ids = [d["id"] for d in body["data"]]
    check(ids == ["looks_ok_payment_abuse", "looks_bad_payment_abuse"], f"get_decisions: {body}")
    check(body["total_results"] == 2 and body["has_more"] is False, f"get_decisions: {body}")

    applied = client.apply_user_decision(
        SELLER,
        {
            "decision_id": "looks_bad_payment_abuse",
            "source": "MANUAL_REVIEW",
            "analyst": "analyst@example.com",
            "description": "mule account confirmed",
            "time": int(time.time() * 1000),
        },
    )
    check(applied.is_ok() and applied.http_status_code == 200, f"apply_user_decision: {applied}")
    check(applied.body["decision"]["id"] == "looks_bad_payment_abuse", f"applied: {applied.body}")
    check(applied.body["entity"] == {"id": SELLER, "type": "user"}, f"applied: {applied.body}")
    stored = custos(f"/v1/events/{applied.body['custos']['events'][0]['event_id']}")
    check(stored["event"]["label"] == "fraud", f"decision as a label: {stored}")
    hold = custos(f"/v1/holds/wd-{RUN}")
    check(hold["status"] == "cancelled", f"the held withdrawal is cancelled: {hold}")

    decisions = client.get_user_decisions(SELLER).body["decisions"]
    check(
        decisions["payment_abuse"]["decision"]["id"] == "looks_bad_payment_abuse",
        f"get_user_decisions: {decisions}",
    )
    latest = ok(client.get_user_score(SELLER), "get_user_score after decision")["latest_decisions"]
    check(latest["payment_abuse"]["category"] == "BLOCK", f"latest_decisions: {latest}")

    try:
        client.apply_user_decision(SELLER, {"decision_id": "ban_forever", "source": "AUTOMATED_RULE"})
        raise AssertionError("an unknown decision was applied")
    except ApiException as e:
        check(e.http_status_code == 400, f"unknown decision: {e.http_status_code}")
        check("decision_id" in (e.body or {}).get("description", ""), f"unknown decision: {e.body}")
    wrong = sift.Client(api_key="not-a-configured-key-0123", api_url=BASE,
                        account_id=SIFT_ACCOUNT, timeout=10)
    try:
        wrong.get_decisions("user")
        raise AssertionError("decisions with a bad key")
    except ApiException as e:
        check(e.http_status_code == 401, f"decisions with a bad key: {e.http_status_code}")


TESTS = [
    test_track_takeover_story,
    test_scores,
    test_bad_key_and_unsupported_events,
    test_label_and_unlabel,
    test_decisions,
]


def main() -> int:
    print(f"sift {sift.version.VERSION} (api v{sift.version.API_VERSION}) against {BASE}")
    for test in TESTS:
        try:
            test()
        except Exception:
            traceback.print_exc()
            print(f"FAILED {test.__name__}")
            return 1
        print(f"ok {test.__name__}")
    print(f"all {len(TESTS)} tests passed ({checks} checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
