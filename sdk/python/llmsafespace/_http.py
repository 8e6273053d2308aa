"""HTTP transport of the SDK: configuration, one requests.Session, error mapping.

Design: every call goes through Transport.request, which always passes a timeout
(connect, read), sends ``Authorization: Bearer`` and a fresh ``X-Request-ID``, turns
transport failures into ConnectionError/RequestTimeout and any non-2xx answer into the
exception of errors.error_for (the envelope ``{"error":{code,message,details}}``).
Error bodies are read with a size cap so a hostile server cannot make the client hold
an unbounded string.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlsplit

import requests

from . import __version__
from .errors import (ConnectionError, LLMSafeSpaceError, RequestTimeout, ValidationError,
                     error_for)

ENV_API_KEY = "LLMSAFESPACE_API_KEY"
ENV_API_URL = "LLMSAFESPACE_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8080/api/v1"
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_REQUEST_TIMEOUT_S = 60.0
MAX_ERROR_BODY = 64 * 1024  # bytes of an error answer read at most

Timeout = Union[float, Tuple[float, float]]


def resolve_config(api_key: Optional[str], api_url: Optional[str]) -> Tuple[str, str]:
    """The key and URL to use: the arguments, else LLMSAFESPACE_API_KEY /
    LLMSAFESPACE_API_URL, else (URL only) http://127.0.0.1:8080/api/v1."""
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
    url = api_url if api_url is not None else os.environ.get(ENV_API_URL, "") or DEFAULT_API_URL
    if not key:
        raise LLMSafeSpaceError(f"no API key: pass api_key= or set {ENV_API_KEY}",
                                code="no_credentials")
    if any(c in key for c in "\r\n\0"):
        raise ValidationError("the API key contains a line break or NUL",
                              fields={"api_key": "must be one line"})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"api_url must be an http(s) URL, not {url!r}",
                              fields={"api_url": "must be http://host:port/api/v1 or https://..."})
    return key, url.rstrip("/")


def seg(value: str) -> str:
    """One path segment, percent-encoded (ids and names never add path structure)."""
    return quote(str(value), safe="")


class Transport:
    """One API endpoint and credential: a requests.Session with timeouts on every call."""

    def __init__(self, api_key: Optional[str] = None, api_url: Optional[str] = None,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
                 session: Optional[requests.Session] = None):
        self.api_key, self.api_url = resolve_config(api_key, api_url)
        if request_timeout <= 0 or connect_timeout <= 0:
            raise ValidationError("timeouts must be positive",
                                  fields={"request_timeout": "must be > 0"})
        self.request_timeout = float(request_timeout)
        self.connect_timeout = float(connect_timeout)
        self._own_session = session is None
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": f"llmsafespace-python/{__version__}"})
        # The key is sent only to our own API URL, never to a redirect target.
        self.session.max_redirects = 0

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def url(self, path: str) -> str:
        return self.api_url + path

    def timeout(self, read: Optional[float] = None) -> Tuple[float, float]:
        return (self.connect_timeout, read if read is not None else self.request_timeout)

    def request(self, method: str, path: str, *, json: Any = None, data: Any = None,
                params: Optional[Mapping[str, Any]] = None, read_timeout: Optional[float] = None,
                headers: Optional[Dict[str, str]] = None, stream: bool = False
                ) -> requests.Response:
        """Sends one request and returns the 2xx response; raises the mapped exception
        otherwise. ``read_timeout`` overrides the default read timeout (executions)."""
        h = {"Authorization": f"Bearer {self.api_key}",
             "X-Request-ID": "sdk-" + secrets.token_hex(10),
             "Accept": "application/json"}
        if headers:
            h.update(headers)
        try:
            r = self.session.request(method, self.url(path), json=json, data=data, params=params,
                                     headers=h, timeout=self.timeout(read_timeout),
                                     stream=stream, allow_redirects=False)
        except requests.exceptions.Timeout as e:
            raise RequestTimeout(f"{method} {path}: no answer within "
                                 f"{self.timeout(read_timeout)} s ({e.__class__.__name__})",
                                 request_id=h["X-Request-ID"]) from None
        except requests.exceptions.RequestException as e:
            raise ConnectionError(f"{method} {path}: {e.__class__.__name__}: {e}",
                                  request_id=h["X-Request-ID"]) from None
        if 200 <= r.status_code < 300:
            return r
        raise self._error(r)

    @staticmethod
    def _error(r: requests.Response) -> LLMSafeSpaceError:
        rid = r.headers.get("X-Request-ID")
        body = b""
        try:
            for chunk in r.iter_content(8192):
                body += chunk
                if len(body) >= MAX_ERROR_BODY:
                    break
        except requests.exceptions.RequestException:
            pass
        finally:
            r.close()
        code, message, details = None, "", {}
        try:
            import json as _json
            env = _json.loads(body[:MAX_ERROR_BODY].decode("utf-8", "replace"))
            err = env.get("error") if isinstance(env, dict) else None
            if isinstance(err, dict):
                code = err.get("code") if isinstance(err.get("code"), str) else None
                message = err.get("message") if isinstance(err.get("message"), str) else ""
                details = err.get("details") if isinstance(err.get("details"), dict) else {}
        except ValueError:
            message = ""
        if not message:
            message = f"HTTP {r.status_code} {r.reason or ''}".strip()
        retry_after = None
        ra = r.headers.get("Retry-After")
        if ra is not None:
            try:
                retry_after = float(ra)
            except ValueError:
                retry_after = None
        if r.status_code in (301, 302, 303, 307, 308):
            message = f"the API answered a redirect to {r.headers.get('Location')!r} (not followed)"
        return error_for(r.status_code, code, message[:1000], details=details, request_id=rid,
                         retry_after=retry_after)

    def json(self, method: str, path: str, **kw: Any) -> Dict[str, Any]:
        """request() for an answer that is a JSON object (anything else is an error)."""
        r = self.request(method, path, **kw)
        try:
            d = r.json()
        except ValueError:
            d = None
        if not isinstance(d, dict):
            raise LLMSafeSpaceError(f"{method} {path}: the answer is not a JSON object",
                                    status=r.status_code,
                                    request_id=r.headers.get("X-Request-ID"))
        return d
