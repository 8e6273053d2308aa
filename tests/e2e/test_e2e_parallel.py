"""test_e2e_parallel: many sandboxes and executions at once against a running system.

20 sandboxes created in parallel (one thread each, a user of their own so the per-user
quota and rate limits of one user are not what is tested), then 10 executions in each,
all threads at once: every execution must come back with its own output (a token unique
to the sandbox and the round, so a mixed-up answer is caught), its own exit code and
files written by one sandbox must not be visible in another. Half the threads use REST,
half the WebSocket. No timing assertions: the suite's time budget is the bound.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from e2e_lib import PY_RUNTIME, Ws, create_sandbox, make_user, stdout_of

N_SANDBOXES = 20
N_EXEC = 10


def test_20_sandboxes_10_executions_each(admin):
    u = make_user(admin)
    barrier = threading.Barrier(N_SANDBOXES)

    def life(i):
        barrier.wait(60)
        sb = create_sandbox(u, runtime=PY_RUNTIME, labels={"e2e": f"par-{i}"})
        sid = sb["id"]
        results = []
        try:
            u.put(f"/sandboxes/{sid}/files/mine.txt", data=f"sandbox {i}".encode())
            if i % 2 == 0:
                for k in range(N_EXEC):
                    ex = u.execute(sid, f"import sys\nprint('tok-{i}-{k}', open('mine.txt')"
                                        f".read())\nsys.exit({k})", type="code")
                    results.append((ex["stdout"], ex["exitCode"], ex["status"]))
            else:
                w = Ws(u, sid, timeout=60)
                try:
                    for k in range(N_EXEC):
                        frames, last = w.run(f"e{k}", mode="command",
                                             content=f"echo tok-{i}-{k} $(cat mine.txt); "
                                                     f"exit {k}")
                        assert last["type"] == "execution_complete", last
                        results.append((stdout_of(frames), last["exitCode"], last["status"]))
                finally:
                    w.close()
            ls = u.get(f"/sandboxes/{sid}/files").json()["files"]
            return sid, results, [f["name"] for f in ls]
        finally:
            u.delete(f"/sandboxes/{sid}")

    with ThreadPoolExecutor(N_SANDBOXES) as pool:
        outcomes = list(pool.map(life, range(N_SANDBOXES)))

    assert len({sid for sid, _, _ in outcomes}) == N_SANDBOXES
    for i, (sid, results, names) in enumerate(outcomes):
        assert len(results) == N_EXEC, (i, results)
        for k, (out, code, status) in enumerate(results):
            assert out == f"tok-{i}-{k} sandbox {i}\n", (i, k, out)
            assert code == k, (i, k, code)
            assert status == ("completed" if k == 0 else "failed"), (i, k, status)
        assert names == ["mine.txt"], (i, names)
