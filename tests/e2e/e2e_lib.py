"""e2e_lib: helpers for the end-to-end suite (tests/e2e), imported by its conftest.py and
test files (a module of its own name: `conftest` is ambiguous when several suites run in
one pytest).

  Api           requests against the API with one token (get/post/put/delete/patch,
                execute(sid, content, type=..., **fields) → the Execution)
  assert_error  checks an error response against API.md's envelope, returns its "error"
  mint_jwt      an HS256 JWT signed with a given secret (the stack's jwt.secret)
  Ws            a WebSocket on /sandboxes/{id}/stream: send(**frame), recv(),
                until(pred), run(eid, **execute), finish(eid)
  stdout_of     the text of a list of output frames
  make_user, create_sandbox, unique, PY_RUNTIME
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import sys
import time

import lss_harness as h
import pytest

requests = pytest.importorskip("requests", reason="python3-requests is not installed")
websocket = pytest.importorskip("websocket", reason="python3-websocket is not installed")

HTTP_TIMEOUT = 30
# lss up seeds a RuntimeEnvironment for the host's python3 (/usr/bin/python3 runs this)
PY_RUNTIME = f"python:{sys.version_info.major}.{sys.version_info.minor}"
_counter = itertools.count()


def unique(prefix):
    return f"{prefix}{os.getpid()}x{next(_counter)}x{int(time.time() * 1000) % 100000}"


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


def make_user(admin, role="user"):
    name = unique("u")
    r = admin.post("/users", json={"username": name, "email": f"{name}@example.com",
                                   "role": role})
    assert r.status_code == 201, r.text
    body = r.json()
    return Api(admin.url, body["apiKey"]["key"], user=body)


def create_sandbox(api, **body):
    body.setdefault("runtime", PY_RUNTIME)
    r = api.post("/sandboxes", json=body)
    assert r.status_code == 201, r.text
    sb = r.json()
    assert sb["status"] == "running", sb
    return sb


def away_from_window_edge(window=60, margin=5):
    """Sleeps past the next rate window boundary when one is less than margin s away, so
    a short run of requests stays in one window."""
    h.wait_until(lambda: window - time.time() % window >= margin, margin + 1,
                 "a point well inside a rate window", interval=0.1)
