"""Streaming executions over the WebSocket ``/sandboxes/{id}/stream``.

Design: one ExecutionStream is one WebSocket connection carrying one execution (the
protocol allows several per connection; one each keeps cancellation and errors simple:
closing the socket cancels it). Iterating yields OutputChunk objects as ``output``
frames arrive, in ``seq`` order; the iteration ends at the terminal frame
(``execution_complete`` or ``execution_cancelled``), after which ``result`` holds an
ExecutionResult whose stdout/stderr are the concatenated chunks (kept up to
``max_buffer`` bytes per stream, then flagged truncated). An ``error`` frame that ends
the execution (``execution_failed``, ``stream_error``, ``rate_limited``, ...) raises the
mapped exception; ``execution_timeout`` is followed by a completion with status
``timeout`` and is not raised. Stdin: given up front it is sent with the execute frame
and closed; ``keep_stdin_open=True`` leaves it open for ``write_stdin``/``close_stdin``;
otherwise it is closed at once so a program reading stdin sees EOF. ``cancel()`` may be
called from another thread while one iterates. Every receive has a deadline.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import websocket  # websocket-client

from ._http import seg

from .errors import (ConnectionError, RequestTimeout, StreamError,
                     ValidationError, error_for)
from .models import CANCELLED, ERROR, ExecutionResult, OutputChunk

DEFAULT_MAX_BUFFER = 16 * 1024 * 1024  # bytes of each stream kept for .result
# characters per stdin frame: at most 6 bytes each once JSON-encoded (\u escapes), so a
# frame stays under 512 KiB, within the server's api.ws_max_frame (default 1 MiB)
STDIN_FRAME_MAX = 64 * 1024
IDLE_MARGIN_S = 30.0  # receive deadline past the execution's own timeout
DEFAULT_IDLE_S = 330.0  # receive deadline when the execution has no timeout of ours
PENDING_ERROR_S = 2.0  # how long a failed send looks for the error frame that explains it


def ws_url(api_url: str, sandbox_id: str) -> str:
    """ws(s)://host/.../sandboxes/{id}/stream for an http(s) API URL."""
    p = urlsplit(api_url)
    scheme = "wss" if p.scheme == "https" else "ws"
    path = p.path.rstrip("/") + f"/sandboxes/{seg(sandbox_id)}/stream"
    return urlunsplit((scheme, p.netloc, path, "", ""))


def utf8_text(value: Union[str, bytes], name: str) -> str:
    """value as text: the API carries stdin as JSON strings, so bytes must be UTF-8."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"{name} must be UTF-8 text (the API carries it as a JSON "
                                  "string)", fields={name: "is not UTF-8"}) from None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be str or bytes", fields={name: type(value).__name__})
    return value


def _status_of(f: Dict[str, Any]) -> str:
    """An execution_complete's status when the frame has none (older servers)."""
    if f.get("timedOut"):
        return "timeout"
    return "completed" if f.get("exitCode") == 0 else "failed"


def _rfc3339(ms: Any) -> Optional[str]:
    """Epoch milliseconds (frame timestamps) as the REST API's RFC 3339 UTC string."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
        return None
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


class ExecutionStream:
    """An execution streamed over the WebSocket: iterate for OutputChunk objects;
    ``result`` is set once the iteration ends. Use as a context manager (or call
    ``close()``) so an abandoned stream closes its socket, which cancels the execution."""

    def __init__(self, api_url: str, api_key: str, sandbox_id: str, *, mode: str,
                 content: str, language: Optional[str] = None, timeout: Optional[int] = None,
                 env: Optional[Dict[str, str]] = None, working_dir: Optional[str] = None,
                 stdin: Union[str, bytes, None] = None, keep_stdin_open: bool = False,
                 connect_timeout: float = 10.0, idle_timeout: Optional[float] = None,
                 max_buffer: int = DEFAULT_MAX_BUFFER, origin: Optional[str] = None):
        if mode not in ("code", "command"):
            raise ValidationError("mode must be code or command", fields={"mode": mode})
        if stdin is not None:
            stdin = utf8_text(stdin, "stdin")
        self.sandbox_id = sandbox_id
        self.execution_id = "sdk-" + secrets.token_hex(8)
        self.result: Optional[ExecutionResult] = None
        self.started = False
        self._max_buffer = max(0, int(max_buffer))
        self._out: Dict[str, List[bytes]] = {"stdout": [], "stderr": []}
        self._kept: Dict[str, int] = {"stdout": 0, "stderr": 0}
        self._cut: Dict[str, bool] = {"stdout": False, "stderr": False}
        self._last_seq = 0
        self._timeout_error: Optional[Dict[str, Any]] = None
        self._started_ms: Any = None
        self._done = False
        self._closed = False
        self._stdin_open = True
        self._lock = threading.Lock()
        self._idle = idle_timeout if idle_timeout is not None else (
            timeout + IDLE_MARGIN_S if timeout else DEFAULT_IDLE_S)
        frame: Dict[str, Any] = {"type": "execute", "executionId": self.execution_id,
                                 "mode": mode, "content": content}
        if language is not None:
            frame["language"] = language
        if timeout is not None:
            frame["timeout"] = timeout
        if env:
            frame["env"] = dict(env)
        if working_dir is not None:
            frame["workingDir"] = working_dir
        url = ws_url(api_url, sandbox_id)
        opts: Dict[str, Any] = {"header": [f"Authorization: Bearer {api_key}"],
                                "timeout": connect_timeout, "enable_multithread": True}
        if origin is not None:
            opts["origin"] = origin
        try:
            self._ws = websocket.create_connection(url, **opts)
        except websocket.WebSocketBadStatusException as e:
            raise error_for(getattr(e, "status_code", None), None,
                            f"WebSocket upgrade refused: {e}") from None
        except (OSError, websocket.WebSocketException) as e:
            raise ConnectionError(f"WebSocket {url}: {e.__class__.__name__}: {e}") from None
        try:
            self._ws.settimeout(self._idle)
            self._send(frame)
            if stdin is not None and stdin != "":
                self.write_stdin(stdin, eof=not keep_stdin_open)
            elif not keep_stdin_open:
                self.close_stdin()
        except BaseException:
            self.close()
            raise

    # -- client → server -------------------------------------------------------------

    def _send(self, frame: Dict[str, Any]) -> None:
        if self._closed:
            raise StreamError("the stream is closed")
        try:
            self._ws.send(json.dumps(frame, ensure_ascii=False))
        except (OSError, websocket.WebSocketException) as e:
            # The server may have refused us (an error frame, then close 1008): say why.
            why = self._pending_error()
            self.close()
            if why is not None:
                raise why from None
            raise ConnectionError(f"WebSocket send: {e.__class__.__name__}: {e}") from None

    def _pending_error(self) -> Optional[Exception]:
        """The exception for an error frame already received, if any (after a failed
        send; reads for at most PENDING_ERROR_S)."""
        deadline = time.monotonic() + PENDING_ERROR_S
        try:
            self._ws.settimeout(PENDING_ERROR_S)
            while time.monotonic() < deadline:
                text = self._ws.recv()
                if not text:
                    continue
                f = json.loads(text)
                if isinstance(f, dict) and f.get("type") == "error":
                    code = str(f.get("code") or "stream_error")
                    details = f.get("details") if isinstance(f.get("details"), dict) else {}
                    return error_for(None, code, str(f.get("message") or code)[:1000],
                                     details=details)
        except Exception:  # nothing more to read: no reason known
            return None
        return None

    def write_stdin(self, data: Union[str, bytes], eof: bool = False) -> None:
        """Sends data (UTF-8 text) to the program's stdin; ``eof=True`` closes it after."""
        data = utf8_text(data, "stdin")
        if not self._stdin_open:
            raise StreamError("stdin is already closed")
        step = STDIN_FRAME_MAX
        pieces = [data[i:i + step] for i in range(0, len(data), step)] or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            self._send({"type": "stdin", "executionId": self.execution_id, "data": piece,
                        "eof": bool(eof and last)})
        if eof:
            self._stdin_open = False

    def close_stdin(self) -> None:
        """Sends EOF on stdin (idempotent)."""
        if self._stdin_open and not self._done:
            self._send({"type": "stdin", "executionId": self.execution_id, "eof": True})
        self._stdin_open = False

    def cancel(self) -> None:
        """Asks the server to cancel the execution; keep iterating (or call ``wait()``)
        for the terminal frame. Safe from another thread; a no-op once it ended."""
        if not self._done and not self._closed:
            try:
                self._send({"type": "cancel", "executionId": self.execution_id})
            except ConnectionError:
                self.close()

    # -- server → client -------------------------------------------------------------

    def __iter__(self) -> Iterator[OutputChunk]:
        return self

    def __next__(self) -> OutputChunk:
        while True:
            if self._done:
                raise StopIteration
            f = self._recv()
            t = f.get("type")
            if f.get("executionId") not in (None, self.execution_id):
                continue
            if t == "output":
                chunk = OutputChunk.from_frame(f)
                self._keep(chunk)
                return chunk
            if t == "execution_start":
                self.started = True
                self._started_ms = f.get("timestamp")
            elif t == "execution_complete":
                self._finish(f, f.get("status") or _status_of(f))
            elif t == "execution_cancelled":
                self._finish(f, CANCELLED)
            elif t == "error":
                self._on_error(f)
            # pong, status_update and unknown additions are ignored

    def wait(self) -> ExecutionResult:
        """Consumes the rest of the stream and returns the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _recv(self) -> Dict[str, Any]:
        deadline = time.monotonic() + self._idle
        while True:
            try:
                text = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                self.close()
                raise RequestTimeout(f"no frame from the server for {self._idle:.0f} s") from None
            except websocket.WebSocketConnectionClosedException:
                self.close()
                raise StreamError("the WebSocket closed before the execution ended") from None
            except (OSError, websocket.WebSocketException) as e:
                self.close()
                raise ConnectionError(f"WebSocket receive: {e.__class__.__name__}: {e}") from None
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            if not text:
                if time.monotonic() > deadline:
                    self.close()
                    raise RequestTimeout(f"no frame from the server for {self._idle:.0f} s")
                continue
            try:
                f = json.loads(text)
            except ValueError:
                self.close()
                raise StreamError("the server sent a frame that is not JSON") from None
            if isinstance(f, dict):
                return f

    def _keep(self, chunk: OutputChunk) -> None:
        if chunk.seq and chunk.seq <= self._last_seq:
            self.close()
            raise StreamError(f"output out of order: seq {chunk.seq} after {self._last_seq}")
        self._last_seq = chunk.seq or self._last_seq
        s = chunk.stream if chunk.stream in self._out else "stdout"
        room = self._max_buffer - self._kept[s]
        data = chunk.data
        if len(data) > room:
            data = data[:max(room, 0)]
            self._cut[s] = True
        if data:
            self._out[s].append(data)
            self._kept[s] += len(data)

    def _finish(self, f: Dict[str, Any], status: Optional[str]) -> None:
        out, err = b"".join(self._out["stdout"]), b"".join(self._out["stderr"])
        d = dict(f)
        d["status"] = status or ERROR
        d.setdefault("startedAt", _rfc3339(self._started_ms))
        d.setdefault("completedAt", _rfc3339(f.get("timestamp")))
        self.result = ExecutionResult.from_json(d)
        self.result.stdout_bytes, self.result.stderr_bytes = out, err
        self.result.stdout = out.decode("utf-8", "replace")
        self.result.stderr = err.decode("utf-8", "replace")
        self.result.stdout_truncated = bool(f.get("stdoutTruncated")) or self._cut["stdout"]
        self.result.stderr_truncated = bool(f.get("stderrTruncated")) or self._cut["stderr"]
        if self.result.execution_id is None:
            self.result.execution_id = self.execution_id
        if status == CANCELLED:
            self.result.exit_code = None
        self._done = True
        self.close()

    def _on_error(self, f: Dict[str, Any]) -> None:
        code = f.get("code") if isinstance(f.get("code"), str) else "stream_error"
        msg = f.get("message") if isinstance(f.get("message"), str) else code
        if code == "execution_timeout":
            self._timeout_error = f  # a completion with status timeout follows
            return
        # Anything else ends this execution: this connection carries only it, and the SDK
        # sends only well-formed frames, so an error without executionId (unauthorized,
        # sandbox_not_found) is about it as well.
        self._done = True
        self.close()
        details = f.get("details") if isinstance(f.get("details"), dict) else {}
        raise error_for(None, code, msg[:1000], details=details)

    def close(self) -> None:
        """Closes the socket (cancelling the execution if it still runs)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._ws.close(timeout=1)
        except Exception:  # closing is best effort
            pass

    def __enter__(self) -> "ExecutionStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


__all__ = ["ExecutionStream", "ws_url"]
