"""Result objects of the LLMSafeSpace SDK: executions, output chunks, files, status.

Each is a dataclass built from the API's camelCase JSON (API.md) by ``from_json``; the
JSON itself is kept in ``raw`` for fields the SDK does not name. Output that is not UTF-8
arrives base64-encoded (``stdoutEncoding``/``encoding: "base64"``); it is decoded here:
``stdout``/``text`` are always ``str`` (invalid bytes replaced), the exact bytes are in
``stdout_bytes``/``data``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import ExecutionError, ExecutionTimeout

# Statuses of an Execution (API.md).
COMPLETED, FAILED, TIMEOUT = "completed", "failed", "timeout"
CANCELLED, ERROR = "cancelled", "error"


def _bytes_of(text: Any, encoding: Optional[str]) -> bytes:
    if not isinstance(text, str):
        return b""
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return text.encode("utf-8", "replace")
    return text.encode("utf-8", "surrogatepass")


def _int(v: Any, default: Any = 0) -> Any:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


@dataclass
class ExecutionResult:
    """The outcome of one execution (REST ``Execution``, or a stream's completion).

    ``status`` is ``"completed"`` (exit 0), ``"failed"`` (non-zero exit), ``"timeout"``,
    ``"cancelled"`` or ``"error"``. ``ok`` is true only for a completed execution."""

    execution_id: Optional[str]
    status: str
    exit_code: Optional[int]
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    usage: Dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    signal: int = 0
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    stdout_bytes: bytes = field(default=b"", repr=False)
    stderr_bytes: bytes = field(default=b"", repr=False)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED and self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout followed by stderr."""
        return self.stdout + self.stderr

    def raise_for_status(self) -> "ExecutionResult":
        """Returns self when ok; raises ExecutionTimeout for a timeout, ExecutionError for
        anything else (both with ``.result``)."""
        if self.ok:
            return self
        if self.status == TIMEOUT:
            raise ExecutionTimeout(f"execution {self.execution_id} timed out after "
                                   f"{self.duration_ms} ms", result=self)
        raise ExecutionError(f"execution {self.execution_id} {self.status} "
                             f"(exit code {self.exit_code})", code=self.status, result=self)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ExecutionResult":
        out = _bytes_of(d.get("stdout", ""), d.get("stdoutEncoding"))
        err = _bytes_of(d.get("stderr", ""), d.get("stderrEncoding"))
        return cls(
            execution_id=d.get("executionId"),
            status=str(d.get("status") or ERROR),
            exit_code=_int(d.get("exitCode"), None),
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_ms=_int(d.get("durationMs")),
            stdout_truncated=bool(d.get("stdoutTruncated")),
            stderr_truncated=bool(d.get("stderrTruncated")),
            usage=dict(d.get("usage") or {}),
            timed_out=bool(d.get("timedOut")) or d.get("status") == TIMEOUT,
            signal=_int(d.get("signal")),
            started_at=d.get("startedAt"),
            completed_at=d.get("completedAt"),
            stdout_bytes=out,
            stderr_bytes=err,
            raw=dict(d),
        )


@dataclass
class OutputChunk:
    """One ``output`` frame of a stream: ``stream`` is ``"stdout"`` or ``"stderr"``,
    ``seq`` its number in the execution (increasing), ``text`` the content."""

    stream: str
    text: str
    seq: int
    timestamp: Optional[int] = None
    data: bytes = field(default=b"", repr=False)

    @classmethod
    def from_frame(cls, f: Dict[str, Any]) -> "OutputChunk":
        data = _bytes_of(f.get("content", ""), f.get("encoding"))
        return cls(stream=str(f.get("stream") or "stdout"), text=data.decode("utf-8", "replace"),
                   seq=_int(f.get("seq")), timestamp=f.get("timestamp"), data=data)


@dataclass
class FileInfo:
    """An entry of ``list_files``."""

    name: str
    path: str
    size: int
    is_dir: bool
    mode: int = 0
    created_at: Optional[str] = None
    modified_at: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "FileInfo":
        return cls(name=str(d.get("name", "")), path=str(d.get("path", "")),
                   size=_int(d.get("size")), is_dir=bool(d.get("isDirectory", d.get("isDir"))),
                   mode=_int(d.get("mode")), created_at=d.get("createdAt"),
                   modified_at=d.get("modifiedAt"), raw=dict(d))


@dataclass
class SandboxStatus:
    """``GET /sandboxes/{id}/status``: lifecycle state, conditions and resource usage."""

    id: str
    status: str
    phase: Optional[str] = None
    conditions: List[Dict[str, Any]] = field(default_factory=list)
    created_at: Optional[str] = None
    started_at: Optional[str] = None
    resources: Dict[str, Any] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "SandboxStatus":
        return cls(id=str(d.get("id", "")), status=str(d.get("status", "")), phase=d.get("phase"),
                   conditions=list(d.get("conditions") or []), created_at=d.get("createdAt"),
                   started_at=d.get("startedAt"), resources=dict(d.get("resources") or {}),
                   raw=dict(d))


@dataclass
class Page:
    """One page of a list: ``items``, and the server's ``limit``, ``offset``, ``total``."""

    items: List[Dict[str, Any]]
    limit: int
    offset: int
    total: int
