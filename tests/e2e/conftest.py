"""Fixtures for the end-to-end suite: the whole system as `make run` starts it.

  stack     session: one lss_up.Stack (PostgreSQL, Redis, every service, lss-api on a
            free port, private data dir /tmp/lss-e2e-*), stopped at the end. Skips the
            suite clearly when build/bin/lss-api (or lss) is missing or not root.
  admin     session: an Api client with the admin key
  new_user  function: new_user() → an Api client for a fresh user made by POST /users
  sandbox   function: sandbox(api, **body) → a created, running Sandbox (dict); every
            sandbox made this way is deleted after the test

Helpers (import from conftest): Api (requests with a base URL and a token),
assert_error (the error envelope of API.md), mint_jwt (HS256 with the stack's
jwt.secret), Ws (a WebSocket on /sandboxes/{id}/stream with frame helpers).
A failing test gets the tail of every process's log appended to its report.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import lss_harness as h  # noqa: E402

try:
    import requests
    import websocket
except ImportError:  # pragma: no cover - Debian packages python3-requests/-websocket
    requests = websocket = None

HTTP_TIMEOUT = 30
# lss up seeds a RuntimeEnvironment for the host's python3 (/usr/bin/python3 runs this)
PY_RUNTIME = f"python:{sys.version_info.major}.{sys.version_info.minor}"
_counter = itertools.count()
_STACK = None  # the session's Stack, for failure reports


def unique(prefix):
    return f"{prefix}{os.getpid()}x{next(_counter)}x{int(time.time() * 1000) % 100000}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _STACK is not None and "stack" in getattr(item, "fixturenames", ()):
        try:
            rep.sections.append(("lss up logs", _STACK.logs()))
        except OSError as e:
            rep.sections.append(("lss up logs", f"could not read the logs: {e}"))


class Api:
    """requests against the API with one token: api.get("/sandboxes") etc."""

    def __init__(self, api_url, token, user=None):
        self.url = api_url
        self.token = token
        self.user = user or {}
        self.s = requests.Session()

    def headers(self, extra=None):
        hd = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        hd.update(extra or {})
        return hd

    def request(self, method, path, headers=None, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.s.request(method, self.url + path, headers=self.headers(headers), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def execute(self, sb, content, type="command", **kw):
        r = self.post(f"/sandboxes/{sb}/execute", json={"type": type, "content": content, **kw})
        assert r.status_code == 200, r.text
        return r.json()


ERROR_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden",
               404: "not_found", 409: "conflict", 413: "payload_too_large",
               429: "rate_limited", 500: "internal_error", 503: "service_unavailable"}


def assert_error(r, status, code=None):
    """r is an error response of API.md: that status, the envelope
    {"error":{"code","message","details"?}} and nothing else, JSON, an X-Request-ID."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers.get("X-Request-ID"), dict(r.headers)
    assert r.headers.get("Content-Type", "").startswith("application/json"), dict(r.headers)
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) <= {"code", "message", "details"}, err
    assert err["code"] == (code or ERROR_CODES[status]), err
    assert isinstance(err["message"], str) and err["message"], err
    if "details" in err:
        assert isinstance(err["details"], dict), err
    return err


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_jwt(secret, claims, header=None):
    """An HS256 JWT over claims, signed with secret (str)."""
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


class Ws:
    """A WebSocket on a sandbox's stream with helpers for its JSON frames."""

    def __init__(self, api, sb, timeout=20, token_in_query=False, header=None):
        url = api.url.replace("http://", "ws://", 1) + f"/sandboxes/{sb}/stream"
        hd = []
        if token_in_query:
            url += f"?token={api.token}"
        elif api.token:
            hd.append(f"Authorization: Bearer {api.token}")
        hd += header or []
        self.ws = websocket.create_connection(url, header=hd, timeout=timeout)

    def send(self, **frame):
        self.ws.send(json.dumps(frame))

    def recv(self):
        op, data = self.ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError(f"closed: {data!r}")
        return json.loads(data)

    def until(self, pred, limit=10000):
        """Frames until pred(frame) is true; returns (all frames, the last)."""
        frames = []
        for _ in range(limit):
            f = self.recv()
            frames.append(f)
            if pred(f):
                return frames, f
        raise AssertionError(f"no matching frame in {frames[-20:]}")

    def run(self, eid, **execute):
        """Sends execute eid and reads to its terminal frame; returns (frames of eid,
        terminal frame)."""
        self.send(type="execute", executionId=eid, **execute)
        return self.finish(eid)

    def finish(self, eid):
        frames, last = self.until(lambda f: f.get("executionId") == eid and f["type"] in (
            "execution_complete", "execution_cancelled") or (
            f["type"] == "error" and f.get("executionId") == eid
            and f.get("code") != "execution_timeout"))
        return [f for f in frames if f.get("executionId") == eid], last

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def stdout_of(frames, stream="stdout"):
    return "".join(f["content"] for f in frames if f["type"] == "output"
                   and f["stream"] == stream)


@pytest.fixture(scope="session")
def stack():
    global _STACK
    if requests is None or websocket is None:
        pytest.skip("python3-requests or python3-websocket is not installed")
    if not h.binary("api").exists() or not h.LSS.exists():
        pytest.skip(f"{h.binary('api')} or {h.LSS} does not exist: run make first")
    if os.geteuid() != 0:
        pytest.skip("the e2e suite runs lss up as root (PostgreSQL as postgres, sandboxes)")
    if not h.Postgres.available() or not shutil.which("redis-server"):
        pytest.skip("PostgreSQL or Redis is not installed (scripts/install-deps)")
    import lss_up
    s = lss_up.Stack(prefix="lss-e2e-")
    try:
        s.start()
    except Exception as e:
        logs = s.logs()
        s.stop()
        pytest.fail(f"lss up did not start: {e}\n{logs}", pytrace=False)
    _STACK = s
    yield s
    _STACK = None
    s.stop()


@pytest.fixture(scope="session")
def admin(stack):
    return Api(stack.api_url, stack.admin_key)


@pytest.fixture(scope="session")
def jwt_secret(stack):
    return (stack.data / "jwt.secret").read_text().strip()


def make_user(admin, role="user"):
    name = unique("u")
    r = admin.post("/users", json={"username": name, "email": f"{name}@example.com",
                                   "role": role})
    assert r.status_code == 201, r.text
    body = r.json()
    return Api(admin.url, body["apiKey"]["key"], user=body)


@pytest.fixture
def new_user(admin):
    return lambda role="user": make_user(admin, role)


@pytest.fixture(scope="session")
def user(admin):
    """One ordinary user shared by the tests that need nothing of their own."""
    return make_user(admin)


def create_sandbox(api, **body):
    body.setdefault("runtime", PY_RUNTIME)
    r = api.post("/sandboxes", json=body)
    assert r.status_code == 201, r.text
    sb = r.json()
    assert sb["status"] == "running", sb
    return sb


@pytest.fixture
def sandbox():
    made = []

    def make(api, **body):
        sb = create_sandbox(api, **body)
        made.append((api, sb["id"]))
        return sb
    yield make
    for api, sid in made:
        try:
            api.delete(f"/sandboxes/{sid}")
        except requests.RequestException:
            pass


@pytest.fixture(scope="session")
def shared_sb(user):
    """One running sandbox of `user` for tests that only execute or move files."""
    sb = create_sandbox(user)
    yield sb
    user.delete(f"/sandboxes/{sb['id']}")
