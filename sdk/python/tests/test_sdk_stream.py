"""Streaming executions over the WebSocket through the SDK: chunks as they are produced
and in order, the result after the stream, stdin (up front and interactive), cancel,
timeouts, errors, and the client-side output bound."""

import time

import pytest

import llmsafespace as lss


def audit_entry(sandbox, execution_id, deadline_s=15):
    """The audit row of an execution, polled until it appears (written just after the
    execution ends) or the deadline passes (None)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for e in sandbox.executions(limit=20).items:
            if e.get("executionId") == execution_id:
                return e
        time.sleep(0.2)
    return None

COUNT = """
import sys, time
for i in range(5):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
print("to stderr", file=sys.stderr, flush=True)
sys.exit(4)
"""


def test_stream_code_chunks_in_order_and_result(sandbox):
    with sandbox.stream_code(COUNT) as st:
        chunks = list(st)
    seqs = [c.seq for c in chunks]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 1
    out = "".join(c.text for c in chunks if c.stream == "stdout")
    assert out == "".join(f"line {i}\n" for i in range(5))
    assert [c.text for c in chunks if c.stream == "stderr"] == ["to stderr\n"]
    r = st.result
    assert r is not None and r.status == "failed" and r.exit_code == 4 and not r.ok
    assert r.stdout == out and r.stderr == "to stderr\n"
    assert r.execution_id == st.execution_id and "cpuMs" in r.usage
    assert r.started_at and r.completed_at and r.started_at <= r.completed_at
    assert r.completed_at.endswith("Z") and r.completed_at[:2] == "20"
    assert list(st) == []  # exhausted


def test_stream_output_arrives_before_the_program_ends(sandbox):
    # The program prints, then waits for a line on stdin: its first chunk must arrive
    # while it still runs (it cannot end before we answer), so output is streamed.
    st = sandbox.stream_code("print('ready', flush=True)\nprint('got', input())",
                             keep_stdin_open=True)
    with st:
        first = next(st)
        assert (first.stream, first.text) == ("stdout", "ready\n")
        assert st.result is None
        st.write_stdin("ping\n", eof=True)
        r = st.wait()
    assert r.ok and r.stdout == "ready\ngot ping\n"


def test_stream_stdin_up_front_and_eof_by_default(sandbox):
    r = sandbox.stream_command("tr a-z A-Z", stdin="shout\n").wait()
    assert r.ok and r.stdout == "SHOUT\n"
    # more than one stdin frame holds (1 MiB each at most), multi-byte characters too
    big = "é" * 300_000 + "end"
    r = sandbox.stream_code("import sys; d = sys.stdin.read(); print(len(d), d[-3:])",
                            stdin=big).wait()
    assert r.ok and r.stdout == f"{len(big)} end\n", r
    # no stdin given: it is closed at once, so a reader sees EOF instead of hanging
    r = sandbox.stream_code("import sys; print(repr(sys.stdin.read()))", timeout=20).wait()
    assert r.ok and r.stdout == "''\n"


def test_stream_env_and_working_dir(sandbox):
    r = sandbox.stream_command("echo $WHO; pwd", env={"WHO": "sdk"}, working_dir="/tmp").wait()
    assert r.stdout == "sdk\n/tmp\n"


def test_cancel_a_stream(sandbox):
    st = sandbox.stream_code("import time\nprint('started', flush=True)\ntime.sleep(60)",
                             timeout=50)
    with st:
        assert next(st).text == "started\n"
        st.cancel()
        rest = list(st)
    assert rest == []
    assert st.result.status == "cancelled" and not st.result.ok
    assert st.result.stdout == "started\n"
    st.cancel()  # after the end: nothing to do, no error
    # the sandbox is still usable
    assert sandbox.run_command("echo after").stdout == "after\n"


def test_stream_timeout_status(sandbox):
    r = sandbox.stream_command("echo x; sleep 30", timeout=1).wait()
    assert r.status == "timeout" and r.timed_out and r.stdout == "x\n", r.raw
    with pytest.raises(lss.ExecutionTimeout):
        r.raise_for_status()


def test_stream_bad_key_and_unknown_sandbox(api, sandbox):
    with pytest.raises(lss.AuthenticationError):
        lss.ExecutionStream(api[0], "lsp_wrong", sandbox.id, mode="code",
                            content="print(1)").wait()
    with pytest.raises(lss.NotFound):
        lss.ExecutionStream(api[0], api[1], "sb-doesnotexist000", mode="code",
                            content="print(1)").wait()


def test_stream_validation_error(sandbox):
    with pytest.raises(lss.ValidationError):
        sandbox.stream_code("print(1)", timeout=100000).wait()


def test_stream_client_side_buffer_bound(api, sandbox):
    st = lss.ExecutionStream(api[0], api[1], sandbox.id, mode="command",
                             content="head -c 5000 /dev/zero | tr '\\0' a", max_buffer=100)
    chunks = list(st)
    assert sum(len(c.data) for c in chunks) == 5000  # every chunk is still yielded
    assert len(st.result.stdout) == 100 and st.result.stdout_truncated


def test_closing_a_stream_cancels_the_execution(sandbox):
    st = sandbox.stream_code("import time\nprint('up', flush=True)\ntime.sleep(60)", timeout=50)
    assert next(st).text == "up\n"
    st.close()  # what leaving a with-block or dropping the stream does
    with pytest.raises(lss.StreamError):
        next(st)
    row = audit_entry(sandbox, st.execution_id)
    assert row is not None, "no audit row for the closed stream's execution"
    assert row["status"] == "cancelled" and row["transport"] == "ws", row
    # and the REST executions are audited too
    r = sandbox.run_command("echo audited")
    row = audit_entry(sandbox, r.execution_id)
    assert row is not None and row["status"] == "completed" and row["kind"] == "command"


def test_concurrent_streams_stay_separate(sandbox):
    streams = [sandbox.stream_command(f"for i in 1 2 3; do echo s{n}-$i; sleep 0.1; done")
               for n in range(3)]
    results = [s.wait() for s in streams]  # read one after the other: the others buffer
    for n, r in enumerate(results):
        assert r.ok and r.stdout == f"s{n}-1\ns{n}-2\ns{n}-3\n"
    assert len({s.execution_id for s in streams}) == 3


def test_cancel_from_another_thread(sandbox):
    import threading
    st = sandbox.stream_code("import time\nwhile True:\n    print('tick', flush=True)\n"
                             "    time.sleep(0.1)", timeout=50)
    first = threading.Event()
    t = threading.Thread(target=lambda: first.wait(20) and st.cancel())
    t.start()
    ticks = 0
    for chunk in st:
        ticks += chunk.text.count("tick")
        first.set()
    t.join(20)
    assert ticks >= 1 and st.result.status == "cancelled"
