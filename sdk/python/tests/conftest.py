"""Fixtures of the SDK tests: the whole system under `lss up` (tests/integration/lss_up.py)
for the session, and SDK objects pointed at it.

  stack     session: lss_up.Stack on a private data dir (skips when build/bin/lss-api is
            missing); stopped at the end; its logs are added to the report of a failed test. With
            SDK_TEST_API_URL and SDK_TEST_ADMIN_KEY set, that running system is used
            instead (for working on the SDK; nothing is started or stopped)
  api       session: (api_url, admin_key)
  client    session: llmsafespace.Client with the admin key
  sandbox   session: one python sandbox shared by the tests that only run things in it
  other_user session: (user id, api key) of a second, non-admin user
  sdk_env   function: LLMSAFESPACE_API_KEY / _API_URL set for the test only
"""

import os
import secrets
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SDK = HERE.parent
ROOT = SDK.parent.parent
sys.path.insert(0, str(SDK))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import lss_harness as h  # noqa: E402
import lss_up  # noqa: E402

import llmsafespace as lss  # noqa: E402

RUNTIME = "python:3.11"
_STACK = []  # the running system, for failure reports


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _STACK:
        try:
            rep.sections.append(("lss up logs (tails)", _STACK[0].logs()))
        except OSError as e:
            rep.sections.append(("lss up logs", f"could not read them: {e}"))


class _Running:
    """A system started elsewhere (SDK_TEST_API_URL, SDK_TEST_ADMIN_KEY)."""

    def __init__(self, url, key):
        self.api_url, self.admin_key = url.rstrip("/"), key

    def logs(self):
        return "(system started elsewhere: no logs)"


@pytest.fixture(scope="session")
def stack():
    if os.environ.get("SDK_TEST_API_URL") and os.environ.get("SDK_TEST_ADMIN_KEY"):
        _STACK.append(_Running(os.environ["SDK_TEST_API_URL"], os.environ["SDK_TEST_ADMIN_KEY"]))
        yield _STACK[0]
        _STACK.clear()
        return
    if not h.binary("api").exists():
        pytest.skip(f"{h.binary('api')} does not exist: run make first")
    st = lss_up.Stack(prefix="lss-sdk-")
    try:
        st.start()
    except Exception:
        print(st.logs())
        st.stop()
        raise
    _STACK.append(st)
    yield st
    _STACK.clear()
    st.stop()


@pytest.fixture(scope="session")
def api(stack):
    return stack.api_url, stack.admin_key


@pytest.fixture(scope="session")
def client(api):
    c = lss.Client(api_key=api[1], api_url=api[0], request_timeout=30)
    yield c
    c.close()


@pytest.fixture(scope="session")
def sandbox(client):
    sb = lss.Sandbox(runtime=RUNTIME, client=client, timeout=900)
    yield sb
    sb.terminate()


@pytest.fixture(scope="session")
def other_user(client):
    name = "sdk-other-" + secrets.token_hex(3)
    d = client.transport.json("POST", "/users", json={
        "username": name, "email": f"{name}@example.com", "role": "user"})
    key = d.get("apiKey")
    key = key.get("key") if isinstance(key, dict) else key
    assert isinstance(key, str) and key.startswith("lsp_"), d
    return d.get("id") or d.get("user", {}).get("id"), key


@pytest.fixture
def sdk_env(api, monkeypatch):
    monkeypatch.setenv("LLMSAFESPACE_API_URL", api[0])
    monkeypatch.setenv("LLMSAFESPACE_API_KEY", api[1])
    return api
