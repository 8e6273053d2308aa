"""test_e2e_sandboxes: a sandbox's life through the public API of a running `lss up`.

Create from the warm pool (warmPool true) and cold (useWarmPool false → warmPool
false), the Sandbox shape of API.md, status, terminate (DELETE, then 404 and gone from
the list, DELETE again 404), the list with its pagination (limit/offset, total the true
count, newest first, limit bounds), and request validation: malformed JSON, wrong types,
unknown fields, duplicate keys, a non-object body, oversized bodies (413), X-Request-ID;
the per-user quota (50 active, 403) and whether it holds under concurrent creates.
"""

import http.client
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

import lss_harness as h
from e2e_lib import PY_RUNTIME, assert_error

SANDBOX_KEYS = {"id", "status", "phase", "runtime", "securityLevel", "timeout", "resources",
                "networkAccess", "labels", "createdAt", "startedAt", "expiresAt", "warmPool",
                "endpoints"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def check_sandbox(sb):
    assert SANDBOX_KEYS <= set(sb), SANDBOX_KEYS - set(sb)
    assert re.fullmatch(r"sb-[a-z0-9]+", sb["id"]), sb["id"]
    assert sb["status"] == "running" and sb["phase"] == "Running", sb
    for k in ("createdAt", "startedAt", "expiresAt"):
        assert RFC3339.match(sb[k]), (k, sb[k])
    assert sb["endpoints"] == {"execute": f"/api/v1/sandboxes/{sb['id']}/execute",
                               "files": f"/api/v1/sandboxes/{sb['id']}/files",
                               "websocket": f"/api/v1/sandboxes/{sb['id']}/stream"}


def available_warm(admin):
    r = admin.get("/warmpools/python-default/status")
    assert r.status_code == 200, r.text
    return r.json()["availablePods"]


def test_create_warm_then_cold(admin, user, sandbox):
    h.wait_until(lambda: available_warm(admin) >= 1, 90, "a Ready warm pod", interval=0.2)
    warm = sandbox(user, labels={"e2e": "warm"}, timeout=120)
    check_sandbox(warm)
    assert warm["warmPool"] is True, warm
    assert warm["runtime"] == PY_RUNTIME and warm["timeout"] == 120
    assert warm["labels"] == {"e2e": "warm"}

    cold = sandbox(user, useWarmPool=False)
    check_sandbox(cold)
    assert cold["warmPool"] is False, cold
    assert cold["timeout"] == 300 and cold["securityLevel"] == "standard"  # defaults

    # both really run code
    for sb in (warm, cold):
        ex = user.execute(sb["id"], "import os; print(os.getcwd())", type="code")
        assert ex["status"] == "completed" and ex["stdout"] == "/workspace\n", ex

    got = user.get(f"/sandboxes/{cold['id']}")
    assert got.status_code == 200
    assert got.json()["id"] == cold["id"] and got.json()["warmPool"] is False

    st = user.get(f"/sandboxes/{warm['id']}/status")
    assert st.status_code == 200, st.text
    st = st.json()
    assert st["id"] == warm["id"] and st["status"] == "running" and st["phase"] == "Running"
    assert {"conditions", "createdAt", "startedAt", "resources"} <= set(st), st
    assert {"cpuUsage", "memoryUsage"} <= set(st["resources"]), st
    for c in st["conditions"]:
        assert {"type", "status", "lastTransitionTime"} <= set(c), c


def test_terminate(user):
    sb = user.post("/sandboxes", json={"runtime": PY_RUNTIME}).json()
    sid = sb["id"]
    r = user.delete(f"/sandboxes/{sid}")
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["message"], str) and r.json()["message"]

    def gone():
        return user.get(f"/sandboxes/{sid}").status_code == 404
    h.wait_until(gone, 30, "the deleted sandbox to answer 404", interval=0.1)
    assert_error(user.get(f"/sandboxes/{sid}"), 404)
    assert_error(user.delete(f"/sandboxes/{sid}"), 404)
    assert_error(user.post(f"/sandboxes/{sid}/execute",
                           json={"type": "command", "content": "true"}), 404)

    def unlisted():
        return sid not in [s["id"] for s in user.get("/sandboxes?limit=100").json()["sandboxes"]]
    h.wait_until(unlisted, 10, "the deleted sandbox to leave the list", interval=0.1)


def test_list_and_pagination(new_user):
    u = new_user()
    empty = u.get("/sandboxes")
    assert empty.status_code == 200
    assert empty.json() == {"sandboxes": [], "pagination": {"limit": 10, "offset": 0,
                                                            "total": 0}}
    ids = [u.post("/sandboxes", json={"runtime": PY_RUNTIME, "useWarmPool": False}).json()["id"]
           for _ in range(3)]
    try:
        page = u.get("/sandboxes?limit=2").json()
        assert page["pagination"] == {"limit": 2, "offset": 0, "total": 3}
        assert [s["id"] for s in page["sandboxes"]] == ids[::-1][:2]  # newest first
        page2 = u.get("/sandboxes?limit=2&offset=2").json()
        assert page2["pagination"] == {"limit": 2, "offset": 2, "total": 3}
        assert [s["id"] for s in page2["sandboxes"]] == [ids[0]]
        past = u.get("/sandboxes?offset=10").json()
        assert past["sandboxes"] == [] and past["pagination"]["total"] == 3
        assert u.get("/sandboxes?limit=100").json()["pagination"]["limit"] == 100
        for q in ("limit=0", "limit=101", "limit=-1", "limit=abc", "offset=-1", "offset=x",
                  "limit=1.5"):
            err = assert_error(u.get(f"/sandboxes?{q}"), 400)
            assert set(err["details"]["fields"]) == {q.split("=")[0]}, (q, err)
        # total counts only the caller's own
        u2 = new_user()
        assert u2.get("/sandboxes").json()["pagination"]["total"] == 0
        # a deleted one leaves the count
        assert u.delete(f"/sandboxes/{ids[0]}").status_code == 200
        h.wait_until(lambda: u.get("/sandboxes").json()["pagination"]["total"] == 2, 30,
                     "total 2 after a delete", interval=0.1)
    finally:
        for sid in ids:
            u.delete(f"/sandboxes/{sid}")


def test_create_validation(user):
    bad = [
        ({"runtime": 5}, {"runtime"}),
        ({}, {"runtime"}),
        ({"runtime": PY_RUNTIME, "timeout": 0}, {"timeout"}),
        ({"runtime": PY_RUNTIME, "timeout": 3601}, {"timeout"}),
        ({"runtime": PY_RUNTIME, "timeout": "60"}, {"timeout"}),
        ({"runtime": PY_RUNTIME, "useWarmPool": "yes"}, {"useWarmPool"}),
        ({"runtime": PY_RUNTIME, "securityLevel": "paranoid"}, {"securityLevel"}),
        ({"runtime": PY_RUNTIME, "labels": []}, {"labels"}),
        ({"runtime": PY_RUNTIME, "bogus": 1}, {"bogus"}),
        ({"runtime": "Python 3!"}, {"runtime"}),
    ]
    for body, fields in bad:
        err = assert_error(user.post("/sandboxes", json=body), 400)
        assert fields <= set(err["details"]["fields"]), (body, err)
        for msg in err["details"]["fields"].values():
            assert isinstance(msg, str) and msg
    # an unknown runtime is refused, not created
    r = user.post("/sandboxes", json={"runtime": "cobol:1"})
    assert r.status_code in (400, 404), r.text
    assert_error(r, r.status_code)


def test_malformed_bodies(user, shared_sb):
    sid = shared_sb["id"]
    for path in ("/sandboxes", f"/sandboxes/{sid}/execute", f"/sandboxes/{sid}/packages",
                 "/user/apikeys"):
        for raw in (b"{bad", b"", b"[1,2]", b"\"str\"", b'{"a":1,"a":2}', b"\xff\xfe"):
            r = user.post(path, data=raw, headers={"Content-Type": "application/json"})
            assert_error(r, 400)
    err = assert_error(user.post(f"/sandboxes/{sid}/execute",
                                 json={"type": "code", "content": 5, "timeout": "x",
                                       "env": [], "nope": True}), 400)
    assert {"content", "timeout", "env", "nope"} <= set(err["details"]["fields"]), err
    err = assert_error(user.post(f"/sandboxes/{sid}/execute",
                                 json={"type": "shell", "content": "true"}), 400)
    assert "type" in err["details"]["fields"]


def test_oversized_bodies(user, shared_sb):
    err = assert_error(user.post("/sandboxes", data=b"{" + b" " * (1 << 20) + b"}",
                                 headers={"Content-Type": "application/json"}), 413)
    assert err["details"]["maxBytes"] == 1 << 20
    # a file upload past api.max_file (64 MiB) is refused from its Content-Length, before
    # any byte of it is sent
    u = urlsplit(user.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.putrequest("PUT", f"{u.path}/sandboxes/{shared_sb['id']}/files/big.bin")
    c.putheader("Authorization", f"Bearer {user.token}")
    c.putheader("Content-Length", str(65 << 20))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413, r.status
    body = r.read()
    assert b'"payload_too_large"' in body, body
    c.close()
    assert user.get(f"/sandboxes/{shared_sb['id']}/files/big.bin").status_code == 404


def test_request_id(user):
    r = user.get("/user", headers={"X-Request-ID": "e2e.trace-1_A"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "e2e.trace-1_A"
    r = user.get("/user", headers={"X-Request-ID": "bad id\u00e9<>"})
    assert r.headers["X-Request-ID"] and r.headers["X-Request-ID"] != "bad id\u00e9<>"
    r = user.get("/nosuchroute")
    assert_error(r, 404)


def _fill(u, n, threads):
    barrier = threading.Barrier(threads)

    def one(_):
        if threads > 4:
            barrier.wait(30)
        r = u.post("/sandboxes", json={"runtime": "bash:5", "useWarmPool": False})
        assert r.status_code in (201, 403), r.text
        return r
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def _delete_all(u):
    ids = [s["id"] for s in u.get("/sandboxes?limit=100").json()["sandboxes"]]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: u.delete(f"/sandboxes/{s}"), ids))


def test_quota(new_user):
    """api.max_sandboxes_per_user (50) active sandboxes per ordinary user; the next one is
    403 with details {limit, active}; deleting one frees a slot."""
    u = new_user()
    try:
        made = _fill(u, 50, 4)
        assert [r.status_code for r in made] == [201] * 50
        err = assert_error(u.post("/sandboxes", json={"runtime": "bash:5"}), 403)
        assert err["details"] == {"limit": 50, "active": 50}, err
        victim = made[0].json()["id"]
        assert u.delete(f"/sandboxes/{victim}").status_code == 200

        def slot():
            r = u.post("/sandboxes", json={"runtime": "bash:5", "useWarmPool": False})
            return r.status_code == 201
        h.wait_until(slot, 15, "a free slot after a delete", interval=0.2)
    finally:
        _delete_all(u)


def test_quota_holds_under_concurrent_creates(new_user):
    for _ in range(3):  # the race shows in the first round in practice
        u = new_user()
        try:
            assert [r.status_code for r in _fill(u, 45, 4)] == [201] * 45
            burst = _fill(u, 10, 10)
            total = u.get("/sandboxes").json()["pagination"]["total"]
            assert total <= 50, (total, [r.status_code for r in burst])
            assert [r.status_code for r in burst].count(201) == 5
        finally:
            _delete_all(u)
