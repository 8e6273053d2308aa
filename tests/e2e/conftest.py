"""Fixtures for the end-to-end suite: the whole system as `make run` starts it.

  stack       session: one lss_up.Stack (PostgreSQL, Redis, every service, lss-api on a
              free port, private data dir /tmp/lss-e2e-*), stopped at the end. Skips the
              suite clearly when build/bin/lss-api (or lss) is missing, or not root, or
              PostgreSQL/Redis/requests/websocket-client are not installed.
  admin       session: an Api client with the admin key
  jwt_secret  session: the stack's api.jwt_secret (<data>/jwt.secret)
  user        session: one ordinary user shared by tests that need nothing of their own
  shared_sb   session: one running sandbox of `user`
  new_user    function: new_user() → an Api client for a fresh user made by POST /users
  sandbox     function: sandbox(api, **body) → a created, running Sandbox (dict); every
              sandbox made this way is deleted after the test

Helpers live in e2e_lib.py. A failing test gets the tail of every process's log appended
to its report ("lss up logs").
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lss_harness as h  # noqa: E402

try:
    import requests  # noqa: F401
    import websocket  # noqa: F401
    HAVE_CLIENTS = True
except ImportError:  # Debian packages python3-requests, python3-websocket
    HAVE_CLIENTS = False

if HAVE_CLIENTS:
    from e2e_lib import Api, create_sandbox, make_user  # noqa: E402

_STACK = None  # the session's Stack, for failure reports


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _STACK is not None and "stack" in getattr(item, "fixturenames", ()):
        try:
            rep.sections.append(("lss up logs", _STACK.logs()))
        except OSError as e:
            rep.sections.append(("lss up logs", f"could not read the logs: {e}"))


@pytest.fixture(scope="session")
def stack():
    global _STACK
    if not HAVE_CLIENTS:
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


@pytest.fixture
def new_user(admin):
    return lambda role="user": make_user(admin, role)


@pytest.fixture(scope="session")
def user(admin):
    """One ordinary user shared by the tests that need nothing of their own."""
    return make_user(admin)


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
