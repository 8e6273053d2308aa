"""test_e2e_isolation: what a program inside a sandbox can reach, and the limits around it.

A sandbox runs as an unprivileged user; it cannot read the system's data dir (the JWT
secret, the admin key), reach the API port without network access, see another
sandbox's processes or files; a memory limit (resources.memory) stops a program that
goes past it; output past api.exec_max_output (1 MiB) is cut and flagged; output that is
not UTF-8 comes back as base64 and decodes to the exact bytes; a sandbox past its
timeout is terminated (execute then 409). Also the HTTP edge: a body without
Content-Length (411), a WebSocket Origin of another site (refused before the upgrade),
a WebSocket frame past api.ws_max_frame (error invalid_message), and the execution audit
GET /sandboxes/{id}/executions.
"""

import base64
import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
import websocket

import lss_harness as h
from e2e_lib import PY_RUNTIME, Ws, assert_error


@pytest.fixture(scope="module")
def sid(shared_sb):
    return shared_sb["id"]


def test_runs_unprivileged_and_cannot_read_the_system(stack, user, sid):
    secret = (stack.data / "jwt.secret").read_text().strip()
    ex = user.execute(sid, f"id -u; cat {stack.data}/jwt.secret {stack.data}/admin.key; "
                           f"ls {stack.data}/sandboxes; cat /etc/shadow; "
                           f"grep -rs {secret[:24]} /tmp /workspace /run /etc; true")
    assert ex["stdout"].splitlines()[0] != "0", ex
    assert secret not in ex["stdout"] + ex["stderr"]
    assert stack.admin_key not in ex["stdout"] + ex["stderr"]
    assert "lsp_" not in ex["stdout"]


def test_no_network_to_the_api(stack, user, sid):
    port = urlsplit(stack.api_url).port
    ex = user.execute(sid, "import socket\ntry:\n"
                           f" socket.create_connection(('127.0.0.1', {port}), 3)\n"
                           " print('connected')\nexcept OSError as e:\n print('refused', e)",
                      type="code")
    assert ex["stdout"].startswith("refused"), ex


def test_sandboxes_do_not_see_each_other(user, sandbox, sid):
    other = sandbox(user, useWarmPool=False)["id"]
    marker = f"e2e-marker-{time.time_ns()}"
    user.put(f"/sandboxes/{other}/files/{marker}.txt", data=marker.encode())
    w = Ws(user, other)
    try:
        w.send(type="execute", executionId="hide", mode="command",
               content=f"python3 -c 'import time; time.sleep(30)' {marker}")
        w.until(lambda f: f["type"] == "execution_start")
        h.wait_until(lambda: marker in user.execute(
            other, "cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '")["stdout"], 10,
            "the marked process, seen from its own sandbox", interval=0.1)  # it is there...
        # ... but not from the other sandbox (the marker is not in this command line)
        ex = user.execute(sid, "cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; "
                               "ls -R /workspace /tmp /run 2>/dev/null; true")
        assert ex["status"] == "completed" and "sleep" not in ex["stdout"], ex
        assert marker not in ex["stdout"], ex
        w.send(type="cancel", executionId="hide")
        w.finish("hide")
    finally:
        w.close()


def test_memory_limit(user, sandbox):
    sb = sandbox(user, useWarmPool=False, resources={"memory": "64Mi"})
    assert sb["resources"].get("memory") == "64Mi", sb
    ex = user.execute(sb["id"], "x = b'a' * (300 * 1024 * 1024)\nprint('allocated', len(x))",
                      type="code", timeout=30)
    assert ex["status"] != "completed" and "allocated" not in ex["stdout"], ex
    # the sandbox survives its program
    assert user.execute(sb["id"], "echo alive")["stdout"] == "alive\n"


def test_output_cut_and_flagged(user, sid):
    ex = user.execute(sid, "head -c 3000000 /dev/zero | tr '\\000' a; echo err >&2")
    assert ex["status"] == "completed", ex
    assert ex["stdoutTruncated"] is True and ex["stderrTruncated"] is False
    assert 0 < len(ex["stdout"]) <= 1 << 20 and set(ex["stdout"]) == {"a"}
    assert ex["stderr"] == "err\n"


def test_non_utf8_output_is_base64(user, sid):
    raw = bytes([0xff, 0xfe, 0x00, 0x41, 0xc3])
    ex = user.execute(sid, f"import sys\nsys.stdout.buffer.write({raw!r})\n"
                           "sys.stderr.write('plain')", type="code")
    assert ex["stdoutEncoding"] == "base64", ex
    assert base64.b64decode(ex["stdout"]) == raw
    assert ex.get("stderrEncoding") in (None, "utf-8") and ex["stderr"] == "plain"
    w = Ws(user, sid)
    try:
        frames, last = w.run("b64", mode="code", language="python",
                             content=f"import sys\nsys.stdout.buffer.write({raw!r})")
        outs = [f for f in frames if f["type"] == "output"]
        got = b"".join(base64.b64decode(f["content"]) if f.get("encoding") == "base64"
                       else f["content"].encode() for f in outs)
        assert got == raw and any(f.get("encoding") == "base64" for f in outs), outs
    finally:
        w.close()


def test_sandbox_timeout_terminates_it(user):
    r = user.post("/sandboxes", json={"runtime": PY_RUNTIME, "timeout": 2})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        def ended():
            g = user.get(f"/sandboxes/{sid}")
            return g.status_code == 404 or g.json()["status"] in ("terminated", "failed")
        h.wait_until(ended, 30, "the sandbox to end at its timeout", interval=0.2)
        r = user.post(f"/sandboxes/{sid}/execute", json={"type": "command", "content": "true"})
        assert r.status_code in (404, 409), r.text
        assert_error(r, r.status_code)
    finally:
        user.delete(f"/sandboxes/{sid}")


def test_body_without_length_is_411(user):
    u = urlsplit(user.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.putrequest("POST", f"{u.path}/sandboxes")
        c.putheader("Authorization", f"Bearer {user.token}")
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        try:
            c.send(b"b\r\n{\"runtime\":\r\n0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the body
        r = c.getresponse()
        assert r.status == 411, r.status
        assert json.loads(r.read())["error"]["code"] == "length_required"
    finally:
        c.close()


def test_ws_foreign_origin_refused(user, sid):
    url = user.url.replace("http://", "ws://", 1) + f"/sandboxes/{sid}/stream"
    with pytest.raises((websocket.WebSocketBadStatusException,
                        websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws = websocket.create_connection(url, header=[f"Authorization: Bearer {user.token}"],
                                         origin="http://evil.example", timeout=10)
        ws.recv()  # pragma: no cover - only reached when the upgrade was accepted
    # the server's own origin is fine
    own = f"http://{urlsplit(user.url).netloc}"
    ws = websocket.create_connection(url, header=[f"Authorization: Bearer {user.token}"],
                                     origin=own, timeout=10)
    ws.send(json.dumps({"type": "ping", "timestamp": 1}))
    assert json.loads(ws.recv())["type"] == "pong"
    ws.close()


def test_ws_oversized_frame(user, sid):
    w = Ws(user, sid)
    try:
        w.send(type="execute", executionId="huge", mode="command", content="x" * (2 << 20))
        f = w.recv()
        assert f["type"] == "error" and f["code"] == "invalid_message", f
    except (ConnectionError, websocket.WebSocketConnectionClosedException, BrokenPipeError):
        pass  # closing the connection is also a refusal
    finally:
        w.close()
    assert user.execute(sid, "echo fine")["stdout"] == "fine\n"


def test_execution_audit(user, sid):
    ex = user.execute(sid, "echo audited; exit 5")

    def listed():
        r = user.get(f"/sandboxes/{sid}/executions?limit=100")
        assert r.status_code == 200, r.text
        return [e for e in r.json()["executions"] if e["executionId"] == ex["executionId"]]
    (row,) = h.wait_until(listed, 10, "the audit row", interval=0.1)
    assert row["status"] == "failed" and row["exitCode"] == 5 and row["kind"] == "command"
    assert row["sandboxId"] == sid and row["transport"] == "rest"
