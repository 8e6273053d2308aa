"""Exceptions of the LLMSafeSpace SDK, mapped from the API's error envelope.

Every error the SDK raises is an LLMSafeSpaceError carrying what the server said:
``code`` (the envelope's ``error.code``, e.g. ``"not_found"``), ``status`` (the HTTP status,
None for errors found on the client side or on the WebSocket), ``request_id`` (the
``X-Request-ID`` of the answer, to quote in a bug report) and ``details`` (the envelope's
``error.details``). A program that fails inside the sandbox is not an exception: it is an
ExecutionResult with a non-zero ``exit_code`` (``result.raise_for_status()`` turns it into
one when wanted).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional


class LLMSafeSpaceError(Exception):
    """Base of every SDK error."""

    default_code: Optional[str] = None

    def __init__(self, message: str, *, code: Optional[str] = None,
                 status: Optional[int] = None, request_id: Optional[str] = None,
                 details: Optional[Mapping[str, Any]] = None):
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.status = status
        self.request_id = request_id
        self.details: Dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None or self.code:
            parts.append(f"({self.status or '-'} {self.code or '-'})")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)


class AuthenticationError(LLMSafeSpaceError):
    """401: missing, invalid, expired or revoked credentials."""
    default_code = "unauthorized"


class PermissionDenied(LLMSafeSpaceError):
    """403: the caller may not do this (for files: a path outside /workspace and /tmp,
    or a symlink pointing out)."""
    default_code = "forbidden"


class NotFound(LLMSafeSpaceError):
    """404: no such sandbox (someone else's sandbox answers 404 too), file or object."""
    default_code = "not_found"


class Conflict(LLMSafeSpaceError):
    """409: the request does not fit the current state (e.g. the object changed)."""
    default_code = "conflict"


class ValidationError(LLMSafeSpaceError):
    """400/422: the request was refused as invalid; ``fields`` maps each bad field to a
    message (from ``details.fields``, or set by the SDK's own checks)."""
    default_code = "invalid_request"

    def __init__(self, message: str, *, fields: Optional[Mapping[str, str]] = None, **kw):
        super().__init__(message, **kw)
        if fields is None:
            fields = self.details.get("fields") or {}
        self.fields: Dict[str, str] = dict(fields)

    def __str__(self) -> str:
        base = super().__str__()
        if self.fields:
            base += ": " + "; ".join(f"{k}: {v}" for k, v in sorted(self.fields.items()))
        return base


class PayloadTooLarge(LLMSafeSpaceError):
    """413: a body or file larger than the server accepts."""
    default_code = "payload_too_large"


class RateLimited(LLMSafeSpaceError):
    """429: too many requests. ``retry_after`` is the number of seconds to wait (from
    ``Retry-After``, or the WebSocket frame's ``details.retryAfter``), ``limit`` and
    ``reset`` (Unix seconds) come from ``details``."""
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kw):
        super().__init__(message, **kw)
        if retry_after is None and "retryAfter" in self.details:
            retry_after = _number(self.details.get("retryAfter"))
        self.retry_after = retry_after
        self.limit = _number(self.details.get("limit"))
        self.reset = _number(self.details.get("reset"))


class ServerError(LLMSafeSpaceError):
    """500 (and any other 5xx but 503): the server failed; it does not say how."""
    default_code = "internal_error"


class ServiceUnavailable(ServerError):
    """503: a dependency is down, or the server is stopping; retrying later may work."""
    default_code = "service_unavailable"


class SandboxError(LLMSafeSpaceError):
    """The sandbox is not usable: it failed to start, did not start in time, or is not
    running (a 409 answering an execution or file operation)."""


class SandboxNotRunning(Conflict, SandboxError):
    """409 because the sandbox is not running; ``sandbox_status`` says what it is."""

    def __init__(self, message: str, **kw):
        super().__init__(message, **kw)
        self.sandbox_status = self.details.get("status")


class NetworkAccessDisabled(Conflict):
    """409 from package installation: the sandbox has no network egress, so packages
    cannot be downloaded (create it with ``network_access={"egress": [...]}``)."""


class ExecutionError(LLMSafeSpaceError):
    """An execution did not complete successfully: raised by
    ``ExecutionResult.raise_for_status()`` (``result`` holds it), or by a stream whose
    execution the platform could not run (WebSocket ``execution_failed``)."""

    def __init__(self, message: str, *, result: Any = None, **kw):
        super().__init__(message, **kw)
        self.result = result


class ExecutionTimeout(ExecutionError):
    """The execution passed its deadline and was killed (status ``timeout``)."""
    default_code = "execution_timeout"


class PackageInstallError(ExecutionError):
    """``install()`` ran the package manager and it failed; ``result`` has its output."""


class StreamError(LLMSafeSpaceError):
    """The WebSocket stream failed (``stream_error``, a protocol violation, or the
    connection closed before the execution ended)."""
    default_code = "stream_error"


class ConnectionError(LLMSafeSpaceError):  # noqa: A001 (shadows the builtin on purpose)
    """The server could not be reached, or the connection broke (transport level)."""
    default_code = "connection_error"


class RequestTimeout(ConnectionError):
    """No answer from the server within the client-side timeout."""
    default_code = "request_timeout"


_BY_STATUS = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
    500: ServerError,
    503: ServiceUnavailable,
}

_BY_CODE = {
    "invalid_request": ValidationError,
    "invalid_message": ValidationError,
    "unknown_message_type": ValidationError,
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDenied,
    "not_found": NotFound,
    "sandbox_not_found": NotFound,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "rate_limited": RateLimited,
    "internal_error": ServerError,
    "service_unavailable": ServiceUnavailable,
    "execution_timeout": ExecutionTimeout,
    "execution_failed": ExecutionError,
    "stream_error": StreamError,
}


def _number(v: Any) -> Optional[float]:
    try:
        return float(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def error_for(status: Optional[int], code: Optional[str], message: str, *,
              details: Optional[Mapping[str, Any]] = None, request_id: Optional[str] = None,
              retry_after: Optional[float] = None) -> LLMSafeSpaceError:
    """The exception for an error answer: chosen by HTTP status when there is one (the
    contract fixes status → code), else by the error code (WebSocket frames)."""
    details = dict(details or {}) if isinstance(details, Mapping) else {}
    cls = _BY_STATUS.get(status) if status is not None else None
    if cls is None and status is not None and status >= 500:
        cls = ServerError
    if cls is None:
        cls = _BY_CODE.get(code or "", LLMSafeSpaceError)
    if cls is Conflict and "status" in details:
        cls = SandboxNotRunning
    elif cls is Conflict and details.get("networkAccess") == "none":
        cls = NetworkAccessDisabled
    kw: Dict[str, Any] = dict(code=code, status=status, request_id=request_id, details=details)
    if cls is RateLimited:
        kw["retry_after"] = retry_after
    return cls(message or (code or f"HTTP {status}"), **kw)
