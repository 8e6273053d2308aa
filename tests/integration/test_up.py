"""test_up: `lss up` (make run) as a user runs it — real PostgreSQL, Redis and services.

Each test gets a private data directory under /tmp (removed afterwards, with the output
file beside it) and runs build/bin/lss up on it with the API on a free port. Until
build/bin/lss-api exists every run passes `--without api` and the api's test (marked
needs_api: the admin key printed once, then only its path; GET /user with it) is
skipped; once the binary exists it runs and the api is part of every stack. Waits poll conditions with
deadlines (lss_harness.wait_until); a test that fails prints lss up's output. Whatever a
test leaves running is stopped (SIGTERM, then SIGKILL) by the fixture.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import lss_harness as h
from lss_up import API, Up, alive, processes_of

SERVICES = [s for s in h.SERVICES if API or s != "api"]
PROCESSES = ["postgres", "redis", *SERVICES]

pytestmark = [
    pytest.mark.skipif(not h.LSS.exists(), reason=f"{h.LSS} does not exist: run make"),
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="lss up is tested as root (PostgreSQL as postgres, sandboxes)"),
    pytest.mark.skipif(not h.Postgres.available() or not shutil.which("redis-server"),
                       reason="PostgreSQL or Redis is not installed (scripts/install-deps)"),
]
needs_api = pytest.mark.skipif(not API, reason="build/bin/lss-api does not exist yet")


@pytest.fixture
def up(request):
    """up(args=...) → a started Up on this test's data dir (one dir per test; a second
    call reuses it, as a second run would)."""
    data = h.short_tmpdir("lss-ut-")
    made = []

    def make(args=(), start=True):
        u = Up(data, args)
        made.append(u)
        return u.start() if start else u
    yield make
    for u in reversed(made):
        u.cleanup()
    rep = getattr(request.node, "rep_call", None)
    if rep and rep.failed:
        out = made[0].out_path.read_text(errors="replace") if made else ""
        print(f"\n===== lss up output ({data}.out) =====\n{out}")
        for log in sorted((data / "logs").glob("*.log")):
            print(f"\n===== {log} (tail) =====\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-30:]))
    for pid in processes_of(data):  # never leave anything behind, even on failure
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(data, ignore_errors=True)
    Path(f"{data}.out").unlink(missing_ok=True)


def python_version():
    r = subprocess.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def assert_all_stopped(u):
    gone = h.wait_until(lambda: not [p for p in u.seen_pids if alive(p)] or None, 10,
                        "every recorded process to be gone") if u.seen_pids else True
    assert gone
    assert processes_of(u.data) == []
    assert not (u.data / "status.json").exists()
    assert not (u.data / "run").exists()


# ---------------------------------------------------------------- command line

def test_usage_errors():
    for args in (["--bogus"], ["--without", "nosuch"], ["--without"], ["--listen", "nope"],
                 ["--log-level", "loud"], ["--ready-timeout", "0"], ["stray"]):
        r = subprocess.run([str(h.LSS), "up", *args], capture_output=True, text=True,
                           timeout=30, env=h.clean_environ())
        assert r.returncode == 2, (args, r.stderr)
        assert "lss up" in r.stderr
    r = subprocess.run([str(h.LSS), "up", "--help"], capture_output=True, text=True,
                       timeout=30, env=h.clean_environ())
    assert r.returncode == 0
    for opt in ("--data-dir", "--listen", "--without", "--log-level", "--state-dir",
                "--ready-timeout", "--no-seed", "--keep-sandboxes", "--quiet"):
        assert opt in r.stdout


@pytest.mark.skipif(API, reason="build/bin/lss-api exists")
def test_missing_api_is_refused():
    base = h.short_tmpdir("lss-ut-")
    data = base / "never"
    r = subprocess.run([str(h.LSS), "up", "--data-dir", str(data)], capture_output=True,
                       text=True, timeout=30, env=h.clean_environ())
    assert r.returncode == 1
    base.rmdir()
    assert "lss-api" in r.stderr and "--without api" in r.stderr, r.stderr
    assert not data.exists()  # refused before touching anything


# ---------------------------------------------------------------- a whole run

def test_up_ready_seeded_then_sigint_stops_everything(up):
    u = up()
    st = u.wait_up()
    out = u.output()
    assert "first run: creating a PostgreSQL cluster" in out

    # every process is running and ready; every service answers /readyz
    assert set(st["processes"]) == set(PROCESSES)
    for name, p in st["processes"].items():
        assert p["state"] == "ready", (name, p)
        assert p["pid"] > 0 and p["restarts"] == 0
        assert Path(p["log"]).exists()
        assert re.search(rf"\s{name}\s+started \(pid {p['pid']}\)", out)
        assert re.search(rf"\s{name}\s+ready", out)
    for name in SERVICES:
        port = st["processes"][name]["admin_port"]
        assert h.http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, name

    # the data dir
    secret = (u.data / "jwt.secret").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{96}", secret)
    assert (u.data / "jwt.secret").stat().st_mode & 0o777 == 0o600
    assert (u.data / "lock").read_text().strip() == str(u.proc.pid)
    assert (u.data / "postgres" / "PG_VERSION").exists()
    assert f"export LSS_STORE_DSN='{st['dsn']}'" in (u.data / "env.sh").read_text()

    # the seeded objects, as the store has them
    store = h.Store(st["dsn"])
    pyver = python_version()
    rte = store.get("rte", f"python-{pyver}")
    assert rte is not None, store.items("rte")
    assert rte["spec"]["language"] == "python" and rte["spec"]["version"] == pyver
    assert rte["spec"]["interpreter"].startswith("/") and os.access(
        rte["spec"]["interpreter"], os.X_OK)
    assert rte["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lss-up"
    assert rte["status"]["available"] is True
    bash = store.get("rte", "bash-5")
    assert bash is not None and bash["spec"]["interpreter"].endswith("/bash")
    if shutil.which("node"):
        major = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"],
                               capture_output=True, text=True).stdout.strip()
        assert store.get("rte", f"nodejs-{major}") is not None
    pool = store.get("wp", "python-default", "default")
    assert pool is not None
    assert pool["spec"]["runtime"] == f"python:{pyver}" and pool["spec"]["minSize"] == 2
    # ... and it works: the warm pool fills with Ready sandboxes from the seeded runtime
    h.wait_until(lambda: len([w for w in store.items("wpod", "default")
                              if w.get("status", {}).get("phase") == "Ready"]) >= 2,
                 90, "two Ready warm pods of python-default")

    if not API:
        assert "API         not started (--without api)" in out

    u.record_pids()
    assert u.stop() == 0
    out = u.output()
    for name in PROCESSES:
        assert re.search(rf"\s{name}\s+stopped: exited with code 0", out), name
    assert re.search(r"sandboxes: \d+ stopped", out)  # the warm pool's
    assert_all_stopped(u)


def test_kill9_of_a_process_restarts_it(up):
    u = up()
    st = u.wait_up()
    for name in ("watcher", "postgres"):
        old = st["processes"][name]["pid"]
        mark = len(u.output())
        os.kill(old, signal.SIGKILL)
        u.wait_output(rf"{name}\s+killed by signal 9 \(SIGKILL\); restarting in 0\.5 s",
                      start=mark, timeout=30)

        def back():
            p = u.status()["processes"][name]
            return p["state"] == "ready" and p["pid"] not in (0, old) and p
        p = h.wait_until(back, 60, f"{name} restarted and ready")
        assert p["restarts"] == 1
        assert p["last_exit"] == "killed by signal 9 (SIGKILL)"
        u.record_pids()
    # the rest of the system is (again) ready
    h.wait_until(lambda: all(p["state"] == "ready"
                             for p in u.status()["processes"].values()), 60, "all ready")
    assert u.stop() == 0
    assert_all_stopped(u)


def test_second_run_reuses_the_data(up):
    first = up()
    st = first.wait_up()
    store = h.Store(st["dsn"])
    pyver = python_version()
    uids = {("rte", f"python-{pyver}", None): None, ("rte", "bash-5", None): None,
            ("wp", "python-default", "default"): None}
    for kind, name, ns in uids:
        uids[(kind, name, ns)] = store.get(kind, name, ns)["metadata"]["uid"]
    secret = (first.data / "jwt.secret").read_text()
    assert first.stop() == 0

    second = up()
    st2 = second.wait_up()
    out = second.output()
    assert "first run: creating" not in out
    assert re.search(r"RuntimeEnvironment python-\S+ .*: exists", out)
    assert re.search(r"WarmPool default/python-default .*: exists", out)
    assert ": created" not in out  # nothing seeded twice
    store = h.Store(st2["dsn"])
    for (kind, name, ns), uid in uids.items():
        assert store.get(kind, name, ns)["metadata"]["uid"] == uid, (kind, name)
    assert (second.data / "jwt.secret").read_text() == secret
    assert second.stop() == 0
    assert_all_stopped(second)


def test_concurrent_up_on_the_same_data_is_refused(up):
    first = up()
    st = first.wait_up()
    t0 = time.monotonic()
    r = subprocess.run(first.argv(), capture_output=True, text=True, timeout=60,
                       env=h.clean_environ())
    assert r.returncode == 1
    assert f"another lss up (pid {first.proc.pid}) is running on {first.data}" in r.stderr
    assert time.monotonic() - t0 < 30
    # the running one did not notice
    assert first.proc.poll() is None
    st2 = first.status()
    assert {n: p["pid"] for n, p in st2["processes"].items()} == \
        {n: p["pid"] for n, p in st["processes"].items()}
    assert first.stop() == 0
    assert_all_stopped(first)


@needs_api
def test_admin_key_printed_once_then_only_its_path(up):
    import requests
    first = up()
    st = first.wait_up()
    assert st["api_url"].startswith("http://127.0.0.1:") and st["api_url"].endswith("/api/v1")
    out = first.output()
    m = re.search(r"admin key\s+(lsp_\S+)\s+\(saved in (\S+);", out)
    assert m, out
    key, key_file = m.group(1), Path(m.group(2))
    assert key_file == first.data / "admin.key"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o777 == 0o600
    r = requests.get(f"{st['api_url']}/user", timeout=10,
                     headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["role"] == "admin", r.text
    assert first.stop() == 0

    second = up()
    st2 = second.wait_up()
    out = second.output()
    assert re.search(r"admin key\s+in \S+/admin\.key", out)  # the path, not the key
    assert "lsp_" not in out
    assert key_file.read_text().strip() == key  # the same admin, the same key
    r = requests.get(f"{st2['api_url']}/user", timeout=10,
                     headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert second.stop() == 0
    assert_all_stopped(second)
