"""The SDK's pure functions (no server): error mapping, URLs, paths, result decoding.
Everything that talks to the API is tested against the real system in the other files."""

import pytest

import llmsafespace as lss
from llmsafespace.errors import error_for
from llmsafespace.models import ExecutionResult, OutputChunk
from llmsafespace.sandbox import remote_path
from llmsafespace.stream import _rfc3339, ws_url


@pytest.mark.parametrize("status,code,cls", [
    (400, "invalid_request", lss.ValidationError), (401, "unauthorized", lss.AuthenticationError),
    (403, "forbidden", lss.PermissionDenied), (404, "not_found", lss.NotFound),
    (409, "conflict", lss.Conflict), (413, "payload_too_large", lss.PayloadTooLarge),
    (422, None, lss.ValidationError), (429, "rate_limited", lss.RateLimited),
    (500, "internal_error", lss.ServerError), (502, None, lss.ServerError),
    (503, "service_unavailable", lss.ServiceUnavailable),
    (None, "sandbox_not_found", lss.NotFound), (None, "execution_failed", lss.ExecutionError),
    (None, "stream_error", lss.StreamError), (None, "something_new", lss.LLMSafeSpaceError),
])
def test_error_mapping(status, code, cls):
    e = error_for(status, code, "msg", request_id="r1")
    assert type(e) is cls and e.status == status and e.request_id == "r1"
    assert isinstance(e, lss.LLMSafeSpaceError)


def test_error_details():
    e = error_for(409, "conflict", "m", details={"status": "terminating"})
    assert isinstance(e, lss.SandboxNotRunning) and isinstance(e, lss.SandboxError)
    assert e.sandbox_status == "terminating"
    e = error_for(409, "conflict", "m", details={"networkAccess": "none"})
    assert isinstance(e, lss.NetworkAccessDisabled)
    e = error_for(429, "rate_limited", "m", details={"limit": 60, "reset": 99}, retry_after=7)
    assert (e.retry_after, e.limit, e.reset) == (7, 60, 99)
    e = error_for(None, "rate_limited", "m", details={"retryAfter": 3})
    assert e.retry_after == 3
    e = error_for(400, "invalid_request", "m", details={"fields": {"a": "bad"}})
    assert e.fields == {"a": "bad"} and "a: bad" in str(e)
    e = error_for(400, "invalid_request", "m", details="not a dict")
    assert e.details == {} and e.fields == {}


def test_ws_url():
    assert ws_url("http://h:1/api/v1", "sb-x") == "ws://h:1/api/v1/sandboxes/sb-x/stream"
    assert ws_url("https://h/api/v1/", "a/b?c") == "wss://h/api/v1/sandboxes/a%2Fb%3Fc/stream"


def test_remote_path():
    assert remote_path("a/b") == "/workspace/a/b"
    assert remote_path("/tmp/x/") == "/tmp/x"
    assert remote_path("/workspace") == "/workspace"
    for bad in ("", "..", "a/../b", "/workspacex/a", "/tmpfoo", "/etc", "a\x00b", "a\x7fb"):
        with pytest.raises(lss.ValidationError):
            remote_path(bad)


def test_result_decoding():
    r = ExecutionResult.from_json({"executionId": "e", "status": "completed", "exitCode": 0,
                                   "stdout": "/w==", "stdoutEncoding": "base64",
                                   "stderr": "ok"})
    assert r.ok and r.stdout_bytes == b"\xff" and r.stdout == "\ufffd" and r.stderr == "ok"
    r = ExecutionResult.from_json({"status": "completed", "exitCode": True})
    assert r.exit_code is None and not r.ok  # a bool is not an exit code
    assert ExecutionResult.from_json({}).status == "error"
    c = OutputChunk.from_frame({"stream": "stderr", "content": "aGk=", "encoding": "base64",
                                "seq": 3})
    assert (c.stream, c.text, c.data, c.seq) == ("stderr", "hi", b"hi", 3)
    assert _rfc3339(1796289120867) == "2026-12-03T09:12:00.867Z"
    assert _rfc3339(None) is None and _rfc3339(True) is None
