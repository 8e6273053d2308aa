"""test_e2e_auth: authentication, ownership and rate limits on every route of a running system.

The matrix: every authenticated route (REST and the WebSocket stream) answers 401
`unauthorized` (envelope, WWW-Authenticate: Bearer) with no credentials, a malformed
token, an unknown API key, a revoked API key, an expired JWT (minted with the stack's
jwt.secret), a JWT with a bad signature or alg "none", and a revoked JWT (DELETE
/auth/token); a valid minted JWT is accepted (so the expired one fails for its expiry).
Someone else's sandbox answers 404 on every sandbox route and over the WebSocket; the
admin sees it; POST /users is admin-only. Rate limits: X-RateLimit-* headers exactly as
API.md on limited routes, the default create_sandbox class (60 per window) running out
into 429 rate_limited with Retry-After and details {limit, reset}, and limits set per
key (the api_keys rate_* columns, written with psql before the key's first use) for the
default class over REST and execute_code over the WebSocket.
"""

import calendar
import json
import secrets
import shutil
import subprocess
import time

import pytest
import websocket

import lss_harness as h
from e2e_lib import PY_RUNTIME, Ws, assert_error, away_from_window_edge, make_user, mint_jwt


@pytest.fixture(scope="module")
def owner(admin):
    return make_user(admin)


@pytest.fixture(scope="module")
def owned(owner):
    r = owner.post("/sandboxes", json={"runtime": PY_RUNTIME})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    owner.put(f"/sandboxes/{sid}/files/secret.txt", data=b"owner's")
    yield sid
    owner.delete(f"/sandboxes/{sid}")


def routes(sid, key_id):
    """(method, path, json body) of every authenticated REST route."""
    sb = f"/sandboxes/{sid}"
    ex = {"type": "command", "content": "echo hi"}
    return [
        ("POST", "/auth/token", {}), ("DELETE", "/auth/token", None),
        ("GET", "/sandboxes", None), ("POST", "/sandboxes", {"runtime": PY_RUNTIME}),
        ("GET", sb, None), ("DELETE", sb, None), ("GET", f"{sb}/status", None),
        ("POST", f"{sb}/execute", ex), ("GET", f"{sb}/executions", None),
        ("GET", f"{sb}/files", None), ("GET", f"{sb}/files/secret.txt", None),
        ("PUT", f"{sb}/files/secret.txt", b"overwritten"),
        ("DELETE", f"{sb}/files/secret.txt", None),
        ("POST", f"{sb}/packages", {"packages": ["requests"]}),
        ("GET", "/warmpools/status", None), ("GET", "/warmpools", None),
        ("POST", "/warmpools", {"name": "e2e-pool", "runtime": PY_RUNTIME, "minSize": 0,
                                "maxSize": 1}),
        ("GET", "/warmpools/python-default", None),
        ("PATCH", "/warmpools/python-default", {"minSize": 0}),
        ("DELETE", "/warmpools/python-default", None),
        ("GET", "/warmpools/python-default/status", None),
        ("GET", "/runtimes", None), ("GET", "/runtimes/bash-5", None),
        ("GET", "/profiles", None), ("GET", "/profiles/default", None),
        ("GET", "/user", None), ("GET", "/user/apikeys", None),
        ("POST", "/user/apikeys", {"name": "x"}), ("DELETE", f"/user/apikeys/{key_id}", None),
        ("POST", "/users", {"username": "mallory", "email": "m@example.com", "role": "admin"}),
    ]


def send(api, method, path, body, token):
    kw = {"data": body} if isinstance(body, bytes) else {"json": body} if body is not None \
        else {}
    hd = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.s.request(method, api.url + path, headers=hd, timeout=30, **kw)


@pytest.fixture(scope="module")
def bad_tokens(admin, owner, jwt_secret):
    uid = owner.user["id"]
    now = int(time.time())
    # a revoked API key of the owner
    k = owner.post("/user/apikeys", json={"name": "to-revoke"}).json()
    assert owner.get("/user", headers={"Authorization": f"Bearer {k['key']}"}).status_code == 200
    assert owner.delete(f"/user/apikeys/{k['id']}").status_code == 200
    # a revoked JWT of the owner
    t = owner.post("/auth/token", json={}).json()["token"]
    assert owner.get("/user", headers={"Authorization": f"Bearer {t}"}).status_code == 200
    rv = owner.s.delete(owner.url + "/auth/token", headers={"Authorization": f"Bearer {t}"},
                        timeout=30)
    assert rv.status_code in (200, 204), rv.text
    return {
        "none": None,
        "empty": "",
        "garbage": "not-a-token",
        "unknown key": "lsp_" + secrets.token_urlsafe(32)[:42] + "A",
        "revoked key": k["key"],
        "expired jwt": mint_jwt(jwt_secret, {"sub": uid, "iat": now - 7200, "exp": now - 3600}),
        "bad signature": mint_jwt("x" * 96, {"sub": uid, "iat": now, "exp": now + 600}),
        "alg none": mint_jwt(jwt_secret, {"sub": uid, "iat": now, "exp": now + 600},
                             header={"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0] + ".",
        "unknown sub": mint_jwt(jwt_secret, {"sub": "usr-nobody", "iat": now, "exp": now + 600}),
        "revoked jwt": t,
    }


def test_minted_jwt_is_accepted(owner, jwt_secret):
    now = int(time.time())
    tok = mint_jwt(jwt_secret, {"sub": owner.user["id"], "iat": now, "exp": now + 600})
    r = owner.get("/user", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200 and r.json()["id"] == owner.user["id"], r.text


def test_every_route_refuses_bad_credentials(owner, owned, bad_tokens):
    key_id = owner.user["apiKey"]["id"]
    for method, path, body in routes(owned, key_id):
        for what, token in bad_tokens.items():
            r = send(owner, method, path, body, token)
            err = assert_error(r, 401)
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, path)
            assert "X-RateLimit-Remaining" not in r.headers, (method, path, what)
            assert err, (method, path, what)
    # nothing happened: the sandbox, its file and the owner's key are intact
    assert owner.get(f"/sandboxes/{owned}/files/secret.txt").content == b"owner's"
    assert owner.get("/user").status_code == 200


def test_stream_refuses_bad_credentials(owner, owned, bad_tokens):
    url = owner.url.replace("http://", "ws://", 1) + f"/sandboxes/{owned}/stream"
    for what, token in bad_tokens.items():
        for in_query in (False, True):
            if in_query and not token:
                continue
            hd = [] if token is None or in_query else [f"Authorization: Bearer {token}"]
            u = f"{url}?token={token}" if in_query else url
            try:
                ws = websocket.create_connection(u, header=hd, timeout=10)
            except websocket.WebSocketBadStatusException as e:
                assert e.status_code == 401, (what, e)
                continue
            try:
                op, data = ws.recv_data()
                assert op == websocket.ABNF.OPCODE_TEXT, (what, op, data)
                f = json.loads(data)
                assert f["type"] == "error" and f["code"] == "unauthorized", (what, f)
                ws.send('{"type":"execute","executionId":"x","mode":"command",'
                        '"content":"touch /workspace/pwned"}')
                op, data = ws.recv_data()
                assert op == websocket.ABNF.OPCODE_CLOSE, (what, op, data)
                assert int.from_bytes(data[:2], "big") == 1008
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                pass
            finally:
                ws.close()
    assert owner.get(f"/sandboxes/{owned}/files/pwned").status_code == 404


def test_someone_elses_sandbox_is_404(admin, owner, owned, new_user):
    other = new_user()
    for method, path, body in routes(owned, "key-x"):
        if "/sandboxes/" not in path:
            continue
        r = send(other, method, path, body, other.token)
        err = assert_error(r, 404)
        assert "owner" not in err["message"], err
    # an id that does not exist answers the same way (ids cannot be probed)
    for path in ("/sandboxes/sb-doesnotexist1", "/sandboxes/nonsense", "/sandboxes/sb-" + "a" * 80):
        assert_error(other.get(path), 404)
    assert owned not in [s["id"] for s in other.get("/sandboxes?limit=100").json()["sandboxes"]]
    # over the WebSocket too
    w = Ws(other, owned)
    try:
        f = w.recv()
        assert f["type"] == "error" and f["code"] in ("sandbox_not_found", "not_found"), f
    except ConnectionError:
        pass
    finally:
        w.close()
    # nothing of the owner's was touched; the admin sees it
    assert owner.get(f"/sandboxes/{owned}/files/secret.txt").content == b"owner's"
    assert admin.get(f"/sandboxes/{owned}").status_code == 200
    assert admin.get(f"/sandboxes/{owned}/files/secret.txt").content == b"owner's"
    # only admins make users
    err = assert_error(other.post("/users", json={"username": "evil", "email": "e@example.com",
                                                  "role": "admin"}), 403)
    assert err["code"] == "forbidden"
    # and another user's API key cannot be deleted by id
    r = other.delete(f"/user/apikeys/{owner.user['apiKey']['id']}")
    assert r.status_code == 404, r.text
    assert owner.get("/user").status_code == 200


def rate_headers(r):
    return (int(r.headers["X-RateLimit-Limit"]), int(r.headers["X-RateLimit-Remaining"]),
            int(r.headers["X-RateLimit-Reset"]))


def test_rate_limit_headers_and_default_create_limit(admin):
    """create_sandbox allows 60 per 60 s window (api.rate_create_sandbox default); the 61st
    request in a window is 429. Invalid bodies count (the limit is checked first), so no
    sandbox is made. A window boundary during the run restarts it with a fresh user."""
    for attempt in range(3):
        u = make_user(admin)
        first = u.post("/sandboxes", json={})
        assert_error(first, 400)
        limit, remaining, reset = rate_headers(first)
        assert limit == 60 and remaining == 59, first.headers
        now = time.time()
        assert now - 2 < reset <= now + 61 and reset % 60 == 0, (reset, now)
        crossed = False
        for i in range(2, 61):
            r = u.post("/sandboxes", json={})
            assert_error(r, 400)
            lim, rem, rst = rate_headers(r)
            if rst != reset:
                crossed = True
                break
            assert (lim, rem) == (60, 60 - i), r.headers
        if crossed:
            continue
        r = u.post("/sandboxes", json={"runtime": PY_RUNTIME})
        if rate_headers(r)[2] != reset:
            continue
        err = assert_error(r, 429)
        assert err["details"] == {"limit": 60, "reset": reset}, err
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 60 and abs(time.time() + retry - reset) <= 2, (retry, reset)
        assert rate_headers(r) == (60, 0, reset)
        # other classes of the same user are unaffected
        g = u.get("/sandboxes")
        assert g.status_code == 200 and g.json()["pagination"]["total"] == 0
        assert rate_headers(g)[0] == 6000
        # and so is another user
        assert make_user(admin).post("/sandboxes", json={}).status_code == 400
        return
    pytest.fail("three rate windows crossed during the run")


def psql(stack, sql):
    dsn = stack.up.status()["dsn"]
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", dsn, "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_per_key_limits(stack, admin, shared_sb):
    if not shutil.which("psql"):
        pytest.skip("psql is not installed")
    u = make_user(admin)
    key_id = u.user["apiKey"]["id"]
    # before the key's first use (its lookup is then cached for api.key_cache_ttl)
    assert psql(stack, f"UPDATE api_keys SET rate_default = 3, rate_execute_code = 2 "
                       f"WHERE id = '{key_id}' RETURNING id") == key_id
    sb = u.post("/sandboxes", json={"runtime": PY_RUNTIME})
    assert sb.status_code == 201, sb.text
    sid = sb.json()["id"]
    try:
        away_from_window_edge()
        seen = []
        for _ in range(5):
            r = u.get("/user")
            seen.append(r.status_code)
        assert seen == [200, 200, 200, 429, 429], seen
        err = assert_error(r, 429)
        assert err["details"]["limit"] == 3
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == "0"

        # execute_code: 2 per window; over the WebSocket an error frame rate_limited
        w = Ws(u, sid)
        try:
            got = []
            for i in range(4):
                w.send(type="execute", executionId=f"r{i}", mode="command", content="true")
                frames, last = w.finish(f"r{i}")
                got.append(last["type"] if last["type"] != "error" else last["code"])
            assert got == ["execution_complete"] * 2 + ["rate_limited"] * 2, got
        finally:
            w.close()
        r = u.post(f"/sandboxes/{sid}/execute", json={"type": "command", "content": "true"})
        assert_error(r, 429)
    finally:
        admin.delete(f"/sandboxes/{sid}")
    # the others are not limited by that key's settings
    assert admin.get("/user").status_code == 200


def test_api_key_expiry(owner):
    def at(seconds):
        t = time.gmtime(time.time() + seconds)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)
    assert_error(owner.post("/user/apikeys", json={"name": "past", "expiresAt": at(-60)}), 400)
    k = owner.post("/user/apikeys", json={"name": "short", "expiresAt": at(3)})
    assert k.status_code == 201, k.text
    hd = {"Authorization": f"Bearer {k.json()['key']}"}
    assert owner.get("/user", headers=hd).status_code == 200  # now cached
    expires = calendar.timegm(time.strptime(k.json()["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S"))
    h.wait_until(lambda: time.time() > expires + 0.5, 10, "the key's expiry", interval=0.1)
    err = assert_error(owner.get("/user", headers=hd), 401)
    assert "expired" in err["message"]


def test_warm_pools_of_others(admin, new_user):
    u = new_user()
    before = admin.get("/warmpools/python-default").json()
    for method, path, body in (("GET", "/warmpools/python-default", None),
                               ("GET", "/warmpools/python-default/status", None),
                               ("PATCH", "/warmpools/python-default", {"minSize": 0}),
                               ("DELETE", "/warmpools/python-default", None)):
        r = send(u, method, path, body, u.token)
        assert r.status_code in (403, 404), (method, path, r.text)
        assert_error(r, r.status_code)
    assert "python-default" not in [p["name"] for p in u.get("/warmpools").json()["warmpools"]]
    after = admin.get("/warmpools/python-default").json()
    assert after["minSize"] == before["minSize"] == 2
    name = f"e2e-{secrets.token_hex(3)}"
    r = u.post("/warmpools", json={"name": name, "runtime": PY_RUNTIME, "minSize": 0,
                                   "maxSize": 1})
    assert r.status_code == 201, r.text
    try:
        assert u.get(f"/warmpools/{name}").status_code == 200
        assert admin.get(f"/warmpools/{name}").status_code == 200  # admin sees all
        assert new_user().get(f"/warmpools/{name}").status_code == 404
    finally:
        assert u.delete(f"/warmpools/{name}").status_code == 200
    assert_error(u.get(f"/warmpools/{name}"), 404)


def test_query_token_only_on_the_stream(owner, owned):
    """API.md: `?token=` is for WebSocket; REST takes the Authorization header only
    (a token in a URL ends up in access logs and proxies)."""
    for path in ("/user", f"/sandboxes/{owned}", f"/sandboxes/{owned}/files/secret.txt"):
        r = owner.s.get(owner.url + path, params={"token": owner.token}, timeout=30)
        assert_error(r, 401)
    w = Ws(owner, owned, token_in_query=True)
    try:
        w.send(type="ping", timestamp=7)
        assert w.recv()["type"] == "pong"
    finally:
        w.close()
