"""test_e2e_fastpath: GET /sandboxes/{id} answered, and POST /execute started, on the
event loop from memory.

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


# ---------------------------------------------------------------- executions
# POST /execute is started from the event loop under the same conditions, straight to
# the exec bridge; anything the fast path does not take (a bad body, a sandbox not
# running, someone else's sandbox) is the worker's, worded and counted as before.

def execute(api, sid, body):
    return api.post(f"/sandboxes/{sid}/execute", json=body)


def test_fast_executions_are_the_workers_executions(stack, user, shared_sb):
    sid = shared_sb["id"]
    away_from_window_edge()
    assert execute(user, sid, {"type": "command", "content": "true"}).status_code == 200
    before = fast_answers(stack)
    remaining = []
    for i in range(20):
        r = execute(user, sid, {"type": "command", "content": f"echo run-{i}; echo err >&2",
                                "env": {"N": str(i)}})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["status"] == "completed" and d["exitCode"] == 0, d
        assert d["stdout"] == f"run-{i}\n" and d["stderr"] == "err\n", d
        assert re.fullmatch(r"exe-[a-z0-9]+", d["executionId"]), d
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
    assert remaining == list(range(remaining[0], remaining[0] - 20, -1)), remaining
    assert fast_answers(stack) - before >= 10  # the fast path really ran them
    # a failing program is still 200 with its exit code, on either path
    d = execute(user, sid, {"type": "code", "content": "import sys; sys.exit(3)"}).json()
    assert d["status"] == "failed" and d["exitCode"] == 3, d


def test_bad_bodies_go_to_the_worker_and_count_once(stack, user, shared_sb):
    sid = shared_sb["id"]
    away_from_window_edge()
    assert execute(user, sid, {"type": "command", "content": "true"}).status_code == 200
    seen = []
    good = execute(user, sid, {"type": "command", "content": "true"})
    seen.append(good)
    unknown = execute(user, sid, {"type": "command", "content": "true", "bogus": 1})
    err = assert_error(unknown, 400)
    assert err["details"]["fields"] == {"bogus": "unknown field"}, err
    seen.append(unknown)
    dup = user.post(f"/sandboxes/{sid}/execute",
                    data=b'{"type":"command","type":"code","content":"true"}',
                    headers={"Content-Type": "application/json"})
    assert_error(dup, 400)
    seen.append(dup)
    seen.append(execute(user, sid, {"type": "command", "content": "true"}))
    nums = [int(r.headers["X-RateLimit-Remaining"]) for r in seen]
    assert nums == list(range(nums[0], nums[0] - 4, -1)), nums


def test_fast_execute_keeps_the_404_and_409(stack, admin, user, sandbox):
    sb = sandbox(user)
    sid = sb["id"]
    for _ in range(3):
        assert execute(user, sid, {"type": "command", "content": "true"}).status_code == 200
    other = make_user(admin)
    for _ in range(3):
        assert_error(execute(other, sid, {"type": "command", "content": "true"}), 404)
    assert user.delete(f"/sandboxes/{sid}").status_code == 200
    r = execute(user, sid, {"type": "command", "content": "true"})
    assert r.status_code in (404, 409), r.text
    if r.status_code == 409:
        assert r.json()["error"]["details"]["status"] in ("terminating", "terminated")
