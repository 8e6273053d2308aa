"""Create when the server answers 202 (api.create_wait 0: it never waits for Running):
the SDK polls the sandbox until it runs. A second system of its own, for this module."""

import pytest

import lss_harness as h
import lss_up

import llmsafespace as lss

RUNTIME = "python:3.11"


@pytest.fixture(scope="module")
def no_wait_api(stack):
    if not hasattr(stack, "up"):
        pytest.skip("needs a system of its own (SDK_TEST_API_URL is set)")
    st = lss_up.Stack(prefix="lss-sdk-nowait-")
    # lss_up passes no LSS_* variable through (clean_environ): add this one for its start
    clean = h.clean_environ
    h.clean_environ = lambda: dict(clean(), LSS_API_CREATE_WAIT="0")
    try:
        st.start()
    except Exception:
        print(st.logs())
        st.stop()
        raise
    finally:
        h.clean_environ = clean
    yield st.api_url, st.admin_key
    st.stop()


def test_202_is_polled_until_running(no_wait_api):
    url, key = no_wait_api
    with lss.Client(api_key=key, api_url=url) as c:
        # the server really answers 202 with a sandbox that is not running yet
        r = c.transport.request("POST", "/sandboxes", json={"runtime": RUNTIME,
                                                            "useWarmPool": False})
        assert r.status_code == 202 and r.json()["status"] != "running", r.text
        lss.Sandbox(sandbox_id=r.json()["id"], client=c).terminate()
        with lss.Sandbox(runtime=RUNTIME, use_warm_pool=False, client=c) as sb:
            assert sb.info["status"] == "running"
            assert sb.run_code("print('polled')").stdout == "polled\n"


def test_start_timeout_gives_sandbox_error_and_deletes(no_wait_api):
    url, key = no_wait_api
    with lss.Client(api_key=key, api_url=url) as c:
        before = {s["id"] for s in c.iter_sandboxes()}
        with pytest.raises(lss.SandboxError) as e:
            lss.Sandbox(runtime=RUNTIME, use_warm_pool=False, client=c, start_timeout=0)
        assert "did not start within" in str(e.value) and e.value.code == "sandbox_not_started"
        sid = e.value.details["sandboxId"]
        assert sid.startswith("sb-") and sid not in before
        # not leaked: being deleted, or gone already (how far the deletion got by now
        # depends on the machine's speed)
        made = [s for s in c.iter_sandboxes() if s["id"] not in before]
        assert [s["id"] for s in made] in ([sid], []), made
        assert all(s["status"] in ("terminating", "terminated") for s in made), made
        try:
            assert c.get_sandbox(sid)["status"] in ("terminating", "terminated")
        except lss.NotFound:
            pass
