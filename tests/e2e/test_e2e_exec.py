"""test_e2e_exec: executions over REST and over the WebSocket stream of a running system.

REST: code and commands, exit codes, stdout/stderr, status completed/failed/timeout,
`stdin`, env and workingDir, the Execution shape; packages with network access off (409
with a clear message). WebSocket: streamed output in order, stdin frames with eof sent
right after execute (a regression: it used to hang), several stdin chunks, cancel
(execution_cancelled), deadline (error execution_timeout then execution_complete
status timeout), ping/pong, bad frames (non-JSON, unknown type, binary, missing
executionId, duplicate executionId: an error each and the connection stays usable),
and closing the socket cancels what it started.
"""

import json
import time

import pytest

import lss_harness as h
from e2e_lib import Ws, assert_error, stdout_of

EXEC_KEYS = {"executionId", "status", "startedAt", "completedAt", "exitCode", "stdout",
             "stderr", "durationMs", "stdoutTruncated", "stderrTruncated", "usage"}


@pytest.fixture(scope="module")
def sid(shared_sb):
    return shared_sb["id"]


def test_code_and_command_results(user, sid):
    ex = user.execute(sid, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
                      "sys.exit(3)", type="code")
    assert EXEC_KEYS <= set(ex), EXEC_KEYS - set(ex)
    assert ex["status"] == "failed" and ex["exitCode"] == 3, ex
    assert ex["stdout"] == "out\n" and ex["stderr"] == "err\n"
    assert ex["executionId"] and isinstance(ex["durationMs"], int)
    assert {"cpuMs", "maxRssKb"} <= set(ex["usage"])
    assert ex["stdoutTruncated"] is False and ex["stderrTruncated"] is False

    ex = user.execute(sid, "print(6 * 7)", type="code", language="python")
    assert (ex["status"], ex["exitCode"], ex["stdout"], ex["stderr"]) == (
        "completed", 0, "42\n", "")

    ex = user.execute(sid, "echo \"$GREETING\" from $(pwd); ls /nonexistent; exit 7",
                      env={"GREETING": "hello"}, workingDir="/tmp")
    assert ex["status"] == "failed" and ex["exitCode"] == 7, ex
    assert ex["stdout"] == "hello from /tmp\n"
    assert "/nonexistent" in ex["stderr"]

    ex = user.execute(sid, "raise ValueError('boom')", type="code")
    assert ex["status"] == "failed" and ex["exitCode"] == 1
    assert "ValueError: boom" in ex["stderr"]


def test_rest_stdin(user, sid):
    ex = user.execute(sid, "import sys\ndata = sys.stdin.read()\nprint(len(data), data.upper())",
                      type="code", stdin="abc\ndef")
    assert ex["status"] == "completed" and ex["stdout"] == "7 ABC\nDEF\n", ex
    # no stdin: the program sees end of input at once (never hangs)
    ex = user.execute(sid, "wc -c", timeout=10)
    assert ex["status"] == "completed" and ex["stdout"].strip() == "0", ex


def test_rest_deadline(user, sid):
    t0 = time.monotonic()
    ex = user.execute(sid, "echo started; sleep 30", timeout=1)
    assert time.monotonic() - t0 < 15
    assert ex["status"] == "timeout", ex
    assert ex["stdout"] == "started\n"
    assert ex["exitCode"] != 0
    # the sandbox is fine afterwards
    assert user.execute(sid, "echo ok")["stdout"] == "ok\n"


def test_rest_execute_validation(user, sid):
    for body, field in (({"type": "code"}, "content"),
                        ({"type": "command", "content": "true", "timeout": 0}, "timeout"),
                        ({"type": "command", "content": "true", "timeout": 99999}, "timeout"),
                        ({"type": "command", "content": "true", "workingDir": "/etc"},
                         "workingDir"),
                        ({"type": "command", "content": "true", "env": {"A": 1}}, "env"),
                        ({"type": "command", "content": "true", "stdin": 5}, "stdin")):
        err = assert_error(user.post(f"/sandboxes/{sid}/execute", json=body), 400)
        assert [k for k in err["details"]["fields"] if k.split(".")[0] == field], (body, err)


def test_missing_working_dir_is_a_client_error(user, sid):
    r = user.post(f"/sandboxes/{sid}/execute", json={"type": "command", "content": "pwd",
                                                     "workingDir": "/workspace/no/such/dir"})
    assert r.status_code in (400, 404), r.text
    err = assert_error(r, r.status_code)
    assert "workingDir" in err["message"], err


def test_packages_without_network(user, sid):
    r = user.post(f"/sandboxes/{sid}/packages", json={"packages": ["requests"]})
    err = assert_error(r, 409)
    assert "network" in err["message"].lower(), err
    r = user.post(f"/sandboxes/{sid}/packages", json={"packages": ["left-pad"],
                                                      "packageManager": "npm"})
    assert_error(r, 409)
    # hostile names and bad bodies are refused as invalid first or as network-off, never run
    for body in ({"packages": ["requests; touch /workspace/pwned"]},
                 {"packages": ["--index-url=http://evil/"]},
                 {"packages": []},
                 {"packages": "requests"},
                 {"packages": ["requests"], "manager": "apt"}):
        r = user.post(f"/sandboxes/{sid}/packages", json=body)
        assert r.status_code in (400, 409), (body, r.text)
        assert_error(r, r.status_code)
    assert user.get(f"/sandboxes/{sid}/files/pwned").status_code == 404


# ---------------------------------------------------------------- WebSocket

@pytest.fixture
def ws(user, sid):
    w = Ws(user, sid)
    yield w
    w.close()


def test_ws_streams_output_in_order(ws):
    frames, last = ws.run("s1", mode="code", language="python",
                          content="import sys\nfor i in range(50):\n print(i, flush=True)\n"
                                  "print('E', file=sys.stderr)\nsys.exit(2)")
    assert frames[0]["type"] == "execution_start"
    assert last["type"] == "execution_complete", last
    assert last["exitCode"] == 2 and last["status"] == "failed"
    for k in ("durationMs", "usage", "stdoutTruncated", "stderrTruncated", "timestamp"):
        assert k in last, k
    assert stdout_of(frames) == "".join(f"{i}\n" for i in range(50))
    assert stdout_of(frames, "stderr") == "E\n"
    seqs = [f["seq"] for f in frames if f["type"] == "output"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for f in frames:
        assert isinstance(f["timestamp"], int) and f["timestamp"] > 1_600_000_000_000


def test_ws_token_in_query(user, sid):
    w = Ws(user, sid, token_in_query=True)
    try:
        frames, last = w.run("q1", mode="command", content="echo q")
        assert last["type"] == "execution_complete" and stdout_of(frames) == "q\n"
    finally:
        w.close()


def test_ws_stdin_right_after_execute(ws):
    """Regression: stdin sent right after execute (before the execution started) hung."""
    for i in range(3):
        eid = f"in{i}"
        ws.send(type="execute", executionId=eid, mode="command", content="cat; echo end",
                timeout=20)
        ws.send(type="stdin", executionId=eid, data="hello ", eof=False)
        ws.send(type="stdin", executionId=eid, data="world\n", eof=True)
        t0 = time.monotonic()
        frames, last = ws.finish(eid)
        assert time.monotonic() - t0 < 10
        assert last["type"] == "execution_complete", last
        assert last["exitCode"] == 0 and last["status"] == "completed"
        assert stdout_of(frames) == "hello world\nend\n"


def test_ws_stdin_interactive(ws):
    ws.send(type="execute", executionId="int", mode="code", language="python",
            content="import sys\nfor line in sys.stdin:\n print('got', line.strip(), "
                    "flush=True)\nprint('eof')")
    ws.until(lambda f: f["type"] == "execution_start")
    for word in ("a", "b"):
        ws.send(type="stdin", executionId="int", data=word + "\n")
        ws.until(lambda f: f["type"] == "output" and f"got {word}" in f["content"])
    ws.send(type="stdin", executionId="int", data="", eof=True)
    frames, last = ws.finish("int")
    assert last["type"] == "execution_complete" and last["exitCode"] == 0
    assert "eof\n" in stdout_of(frames)


def test_ws_cancel(ws):
    ws.send(type="execute", executionId="c1", mode="command",
            content="echo begin; sleep 60; echo never")
    ws.until(lambda f: f["type"] == "output" and f.get("executionId") == "c1")
    t0 = time.monotonic()
    ws.send(type="cancel", executionId="c1")
    frames, last = ws.finish("c1")
    assert last["type"] == "execution_cancelled", last
    assert time.monotonic() - t0 < 10
    assert "never" not in stdout_of(frames)
    # the connection goes on
    frames, last = ws.run("c2", mode="command", content="echo after")
    assert last["type"] == "execution_complete" and stdout_of(frames) == "after\n"


def test_ws_deadline(ws):
    ws.send(type="execute", executionId="d1", mode="command",
            content="echo tick; sleep 30", timeout=1)
    frames, last = ws.finish("d1")
    types = [f["type"] for f in frames]
    assert "error" in types, frames
    err = frames[types.index("error")]
    assert err["code"] == "execution_timeout", err
    assert last["type"] == "execution_complete" and last["status"] == "timeout", last
    assert types.index("error") < len(types) - 1  # the error first, then complete
    assert stdout_of(frames) == "tick\n"


def test_ws_concurrent_executions(ws):
    for i in range(4):
        ws.send(type="execute", executionId=f"p{i}", mode="command",
                content=f"sleep 0.{i}; echo p{i}")
    done = {}
    frames, _ = ws.until(lambda f: f["type"] == "execution_complete" and
                         done.setdefault(f["executionId"], f) and len(done) == 4)
    for i in range(4):
        assert done[f"p{i}"]["exitCode"] == 0
        assert stdout_of([f for f in frames if f.get("executionId") == f"p{i}"]) == f"p{i}\n"


def test_ws_bad_frames_keep_the_connection(ws):
    def error_for(send):
        send()
        f = ws.recv()
        assert f["type"] == "error", f
        return f
    assert error_for(lambda: ws.ws.send("not json"))["code"] == "invalid_message"
    assert error_for(lambda: ws.ws.send("[1,2]"))["code"] in ("invalid_message",
                                                              "invalid_request")
    assert error_for(lambda: ws.send(type="bogus"))["code"] == "unknown_message_type"
    assert error_for(lambda: ws.ws.send(json.dumps({"no": "type"})))["code"] in (
        "invalid_message", "invalid_request")
    assert error_for(lambda: ws.ws.send_binary(b"\x00\xff{}"))["code"] == "invalid_message"
    assert error_for(lambda: ws.send(type="execute", mode="command",
                                     content="true"))["code"] == "invalid_request"
    assert error_for(lambda: ws.send(type="execute", executionId="x" * 200, mode="command",
                                     content="true"))["code"] == "invalid_request"
    assert error_for(lambda: ws.send(type="execute", executionId="m1", mode="nope",
                                     content="true"))["code"] == "invalid_request"
    assert error_for(lambda: ws.send(type="stdin", data="x"))["code"] == "invalid_request"
    # stdin and cancel for an execution that does not exist
    for frame in ({"type": "stdin", "executionId": "ghost", "data": "x"},
                  {"type": "cancel", "executionId": "ghost"}):
        f = error_for(lambda: ws.ws.send(json.dumps(frame)))
        assert f["code"] in ("invalid_request", "execution_failed"), f
    # a duplicate executionId while the first runs is refused; the first is unharmed
    ws.send(type="execute", executionId="dup", mode="command", content="sleep 1; echo one")
    ws.send(type="execute", executionId="dup", mode="command", content="echo two")
    frames, last = ws.until(lambda f: f["type"] == "execution_complete")
    errs = [f for f in frames if f["type"] == "error"]
    assert len(errs) == 1 and errs[0]["code"] == "invalid_request", frames
    assert errs[0].get("executionId") == "dup"
    assert last["executionId"] == "dup" and last["exitCode"] == 0
    assert stdout_of([f for f in frames if f.get("executionId") == "dup"]) == "one\n"
    # ping/pong, and the connection still executes
    ws.send(type="ping", timestamp=12345)
    assert ws.recv()["type"] == "pong"
    frames, last = ws.run("alive", mode="command", content="echo alive")
    assert stdout_of(frames) == "alive\n"


def test_ws_close_cancels(user, sid):
    w = Ws(user, sid)
    w.send(type="execute", executionId="bye", mode="command",
           content="echo $$ > /tmp/e2e-bye.pid; echo written; sleep 60")
    w.until(lambda f: f["type"] == "output" and "written" in f["content"])
    alive = user.execute(sid, "kill -0 $(cat /tmp/e2e-bye.pid) && echo alive")
    assert alive["stdout"] == "alive\n", alive
    w.close()

    def gone():
        ex = user.execute(sid, "kill -0 $(cat /tmp/e2e-bye.pid) 2>/dev/null || echo gone")
        return ex["stdout"] == "gone\n"
    h.wait_until(gone, 15, "the execution to end with its socket", interval=0.2)
