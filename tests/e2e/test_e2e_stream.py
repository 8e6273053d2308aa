"""test_e2e_stream: WebSocket output has its own cap, REST output keeps its own (issue 5).

A WebSocket execution is flow-controlled (credit returns only once frames are written),
so its output is not held in memory; it is capped by api.ws_max_output (default 1 GiB),
not by api.exec_max_output (default 1 MiB, at most 16 MiB), which still caps REST. One
execution printing 20 MB — more than exec_max_output can ever allow — arrives whole over
the WebSocket, every byte in order, not flagged truncated; the same program over REST is
cut at 1 MiB and flagged. Also: many short executions on one connection each get their
exact output (the lost-output bug seen over REST, checked on the stream too).
"""

import pytest

from e2e_lib import Ws

BIG = 20_000_000
LINE = "0123456789abcdefghijklmnopqrstuvwxyz-._~!$&'()*+,;=:@/?ABCDEFGHIJKLMNOPQRSTUVWXY\n"


@pytest.fixture(scope="module")
def sid(shared_sb):
    return shared_sb["id"]


def _program(n):
    # n bytes of LINE repeated (the last line cut), written in 64 KiB blocks
    return ("import sys\n"
            f"line = {LINE!r}\n"
            f"n = {n}\n"
            "block = (line * (65536 // len(line) + 1))\n"
            "out = sys.stdout\n"
            "while n > 0:\n"
            "    k = min(n, 65536)\n"
            "    out.write(block[:k] if k < 65536 else block[:65536])\n"
            "    n -= k\n")


def _expected(n):
    block = LINE * (65536 // len(LINE) + 1)
    full, rest = divmod(n, 65536)
    return block[:65536] * full + block[:rest]


def test_ws_output_past_the_rest_cap_arrives_whole(user, sid):
    w = Ws(user, sid, timeout=120)
    try:
        frames, last = w.run("big", mode="code", language="python", content=_program(BIG),
                             timeout=120)
    finally:
        w.close()
    assert last["type"] == "execution_complete", last
    assert last["exitCode"] == 0 and not last["stdoutTruncated"], last
    assert last["stdoutBytes"] == BIG, last
    outs = [f for f in frames if f["type"] == "output"]
    got = "".join(f["content"] for f in outs if f["stream"] == "stdout")
    assert len(got) == BIG
    assert got == _expected(BIG)
    seqs = [f["seq"] for f in outs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_rest_output_still_capped(user, sid):
    r = user.post(f"/sandboxes/{sid}/execute",
                  json={"type": "code", "language": "python", "content": _program(3 << 20),
                        "timeout": 60})
    assert r.status_code == 200, r.text
    ex = r.json()
    assert ex["status"] == "completed" and ex["stdoutTruncated"] is True, ex["status"]
    assert len(ex["stdout"]) == 1 << 20
    assert ex["stdout"] == _expected(3 << 20)[: 1 << 20]


def test_ws_many_short_executions_exact_output(user, sid):
    w = Ws(user, sid, timeout=60)
    try:
        for i in range(0, 48, 16):
            ids = [f"p{k}" for k in range(i, i + 16)]
            for eid in ids:
                w.send(type="execute", executionId=eid, mode="code", language="python",
                       content=f"print({eid!r})")
            done = {}
            while not all("end" in done.get(x, {}) for x in ids):
                f = w.recv()
                eid = f.get("executionId")
                if f["type"] == "output" and f["stream"] == "stdout":
                    done.setdefault(eid, {"out": ""})["out"] += f["content"]
                elif f["type"] == "execution_complete":
                    done.setdefault(eid, {"out": ""})["end"] = f
                elif f["type"] == "error":
                    pytest.fail(f"error frame: {f}")
            for eid in ids:
                assert done[eid]["end"]["exitCode"] == 0, done[eid]
                assert done[eid]["out"] == f"{eid}\n", (eid, done[eid])
    finally:
        w.close()
