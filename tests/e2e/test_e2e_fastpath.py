"""test_e2e_fastpath: GET /sandboxes/{id} answered on the event loop from memory.

lss-api answers that route without a worker when the key, the sandbox and a rate-limit
number are all in memory (docs/api.md, "Life of a request"). These tests check that the
fast answers are the worker's answers: the same body, rate-limit headers counting down
by exactly one across both paths (blocks of numbers taken from Redis), a revoked key
refused on the very next request, and someone else's sandbox still 404 — and that the
fast path is really taken (lss_api_fast_answers_total grows).
"""

import re

import requests

from e2e_lib import Api, assert_error, away_from_window_edge, make_user

N = 80  # more than two rate-limit blocks of the default class (6000 / 200 = 30)


def fast_answers(stack):
    text = requests.get(stack.base_url + "/metrics", timeout=30).text
    m = re.search(r"^lss_api_fast_answers_total (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_fast_answers_equal_worker_answers(stack, user, shared_sb):
    sid = shared_sb["id"]
    away_from_window_edge()
    before = fast_answers(stack)
    bodies, remaining = [], []
    for _ in range(N):
        r = user.get(f"/sandboxes/{sid}")
        assert r.status_code == 200, r.text
        bodies.append(r.json())
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
        assert r.headers["X-Request-ID"]
        assert r.headers["Content-Type"].startswith("application/json")
    # every answer is the sandbox's view (the object does not change meanwhile)
    assert all(b == bodies[0] for b in bodies), bodies[0]
    assert bodies[0]["id"] == sid and bodies[0]["status"] == "running"
    # one number per request, whichever path answered
    assert remaining == list(range(remaining[0], remaining[0] - N, -1)), remaining
    assert fast_answers(stack) - before >= N // 2


def test_revoked_key_refused_at_once(stack, user, shared_sb):
    sid = shared_sb["id"]
    k = user.post("/user/apikeys", json={"name": "fast-revoke"}).json()
    second = Api(user.url, k["key"])
    for _ in range(5):
        assert second.get(f"/sandboxes/{sid}").status_code == 200
    before = fast_answers(stack)
    assert second.get(f"/sandboxes/{sid}").status_code == 200
    assert fast_answers(stack) > before  # it was in the key cache
    assert user.delete(f"/user/apikeys/{k['id']}").status_code == 200
    err = assert_error(second.get(f"/sandboxes/{sid}"), 401)
    assert err["code"] == "unauthorized"


def test_other_users_sandbox_still_hidden(stack, admin, user, shared_sb):
    sid = shared_sb["id"]
    for _ in range(3):
        assert user.get(f"/sandboxes/{sid}").status_code == 200
    other = make_user(admin)
    for _ in range(3):
        assert_error(other.get(f"/sandboxes/{sid}"), 404)
    # the admin sees it (on either path)
    assert admin.get(f"/sandboxes/{sid}").json()["id"] == sid
