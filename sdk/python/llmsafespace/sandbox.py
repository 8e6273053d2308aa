"""Sandbox: one LLMSafeSpace sandbox — create or attach, run code, stream, files, packages.

Design: ``Sandbox(runtime=...)`` creates (``POST /sandboxes``; 201 is running, 202 is
polled with ``GET /sandboxes/{id}`` every 0.5 s until running or failed, bounded by
``start_timeout``; a sandbox that fails or does not start in time is deleted again and
SandboxError raised); ``Sandbox(sandbox_id=...)`` attaches to an existing one. As a
context manager it terminates the sandbox on exit unless it was attached
(``terminate_on_exit`` overrides). Executions over REST give an ExecutionResult; over
the WebSocket (``stream_code``/``stream_command``) an ExecutionStream. Remote paths are
resolved here before they reach a URL: relative ones are under ``/workspace``; ``..``
segments, control characters and absolute paths outside ``/workspace`` and ``/tmp`` are
refused with ValidationError (the server refuses them as well, but a URL path loses
both ``..`` — HTTP libraries remove dot segments — and the leading ``/``, so without
this check ``/etc/passwd`` would silently mean ``/workspace/etc/passwd``).
"""

from __future__ import annotations

import os
import time
from pathlib import PurePosixPath
from typing import Any, Dict, Iterable, List, Optional, Union
from urllib.parse import quote

from ._http import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, seg
from .errors import (NotFound, PackageInstallError, SandboxError, ValidationError)
from .models import ExecutionResult, FileInfo, Page, SandboxStatus
from .stream import ExecutionStream, utf8_text

DEFAULT_START_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.5
EXEC_READ_MARGIN_S = 30.0  # read timeout past an execution's own deadline
EXEC_DEFAULT_READ_S = 330.0  # read timeout of an execution with no timeout given
INSTALL_READ_S = 630.0  # the server bounds package installs at 600 s
MAX_DOWNLOAD = 1 << 30  # bytes; the server's api.max_file is at most 1 GiB
ROOTS = ("/workspace", "/tmp")

Data = Union[bytes, bytearray, memoryview]


def remote_path(path: Union[str, os.PathLike]) -> str:
    """The absolute sandbox path for path: relative paths are under /workspace; raises
    ValidationError for an empty path, control characters, a ``..`` segment or an
    absolute path outside /workspace and /tmp."""
    p = os.fspath(path)
    if not isinstance(p, str) or not p:
        raise ValidationError("a sandbox path is required", fields={"path": "is required"})
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in p):
        raise ValidationError("a sandbox path cannot contain control characters",
                              fields={"path": "contains a control character"})
    if ".." in p.split("/"):
        raise ValidationError(f"{p!r}: '..' segments are not allowed in sandbox paths",
                              fields={"path": "must not contain '..'"})
    if not p.startswith("/"):
        p = "/workspace/" + p
    norm = str(PurePosixPath(p))  # collapses '//' and '/./', drops a trailing '/'
    if not any(norm == r or norm.startswith(r + "/") for r in ROOTS):
        raise ValidationError(f"{p!r} is outside the sandbox's writable roots "
                              "(/workspace, /tmp)", fields={"path": "outside /workspace and /tmp"})
    return norm


def _file_url(sandbox_id: str, path: str) -> str:
    return f"/sandboxes/{seg(sandbox_id)}/files/{quote(remote_path(path).lstrip('/'), safe='/')}"


class Sandbox:
    """A sandbox on an LLMSafeSpace API.

    Create: ``Sandbox(runtime="python:3.11", timeout=300, use_warm_pool=True, ...)``.
    Attach: ``Sandbox(sandbox_id="sb-...")``. ``api_key``/``api_url`` default to
    LLMSAFESPACE_API_KEY / LLMSAFESPACE_API_URL; or pass ``client=Client(...)``.

    ``timeout`` is the sandbox's lifetime in seconds (the API's ``timeout``, 1..3600);
    ``start_timeout`` bounds the wait for it to run; ``request_timeout`` is the HTTP read
    timeout of ordinary calls (executions wait for their own deadline plus 30 s)."""

    def __init__(self, runtime: Optional[str] = None, *, sandbox_id: Optional[str] = None,
                 api_key: Optional[str] = None, api_url: Optional[str] = None,
                 timeout: Optional[int] = None, use_warm_pool: bool = True,
                 security_level: Optional[str] = None, resources: Optional[Dict[str, Any]] = None,
                 network_access: Optional[Dict[str, Any]] = None, profile: Optional[str] = None,
                 labels: Optional[Dict[str, str]] = None,
                 start_timeout: float = DEFAULT_START_TIMEOUT_S,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
                 terminate_on_exit: Optional[bool] = None, client: Any = None):
        from .client import Client
        if (runtime is None) == (sandbox_id is None):
            raise ValidationError("give either runtime= (create) or sandbox_id= (attach)",
                                  fields={"runtime": "runtime or sandbox_id is required"})
        self.client = client or Client(api_key, api_url, request_timeout=request_timeout,
                                       connect_timeout=connect_timeout)
        self._own_client = client is None
        self._t = self.client.transport
        self.attached = sandbox_id is not None
        self.terminate_on_exit = (not self.attached) if terminate_on_exit is None \
            else bool(terminate_on_exit)
        self.info: Dict[str, Any] = {}
        self.terminated = False
        try:
            if self.attached:
                self.id = str(sandbox_id)
                self.refresh()
            else:
                self.id = ""
                self._create(runtime, timeout, use_warm_pool, security_level, resources,
                             network_access, profile, labels, start_timeout)
        except BaseException:
            # created but not handed to the caller (Ctrl-C or a transport error while
            # waiting for it): delete it rather than leak it
            if not self.attached and self.id and not self.terminated:
                try:
                    self.terminate()
                except Exception:
                    pass
            if self._own_client:
                self.client.close()
            raise

    # -- lifecycle -------------------------------------------------------------------

    def _create(self, runtime: Optional[str], timeout: Optional[int], use_warm_pool: bool,
                security_level: Optional[str], resources: Optional[Dict[str, Any]],
                network_access: Optional[Dict[str, Any]], profile: Optional[str],
                labels: Optional[Dict[str, str]], start_timeout: float) -> None:
        body: Dict[str, Any] = {"runtime": runtime, "useWarmPool": bool(use_warm_pool)}
        for k, v in (("timeout", timeout), ("securityLevel", security_level),
                     ("resources", resources), ("networkAccess", network_access),
                     ("profile", profile), ("labels", labels)):
            if v is not None:
                body[k] = v
        self.info = self._t.json("POST", "/sandboxes", json=body)
        self.id = str(self.info.get("id") or "")
        if not self.id:
            raise SandboxError("the create answer has no sandbox id")
        deadline = time.monotonic() + max(0.0, start_timeout)
        while self.info.get("status") != "running":
            st = self.info.get("status")
            if st in ("failed", "terminating", "terminated"):
                self._give_up(f"sandbox {self.id} is {st}: {self._reason()}")
            if time.monotonic() >= deadline:
                self._give_up(f"sandbox {self.id} did not start within {start_timeout:g} s "
                              f"(status {st})")
            time.sleep(POLL_INTERVAL_S)
            self.refresh()

    def _reason(self) -> str:
        for c in self.info.get("conditions") or []:
            if isinstance(c, dict) and (c.get("message") or c.get("reason")):
                return str(c.get("message") or c.get("reason"))
        return "no reason given"

    def _give_up(self, message: str) -> None:
        try:
            self.terminate()
        except Exception:  # the error below is the one that matters
            pass
        raise SandboxError(message, code="sandbox_not_started",
                           details={"status": self.info.get("status"), "sandboxId": self.id})

    def refresh(self) -> Dict[str, Any]:
        """Reads the Sandbox object again (``info``) and returns it."""
        self.info = self._t.json("GET", f"/sandboxes/{seg(self.id)}")
        return self.info

    @property
    def runtime(self) -> Optional[str]:
        return self.info.get("runtime")

    @property
    def warm_pool(self) -> bool:
        """True when the sandbox came from a warm pool."""
        return bool(self.info.get("warmPool"))

    def status(self) -> SandboxStatus:
        """``GET /sandboxes/{id}/status``: status, phase, conditions, resource usage."""
        return SandboxStatus.from_json(self._t.json("GET", f"/sandboxes/{seg(self.id)}/status"))

    def executions(self, limit: int = 10, offset: int = 0) -> Page:
        """The sandbox's execution audit, newest first (``GET /sandboxes/{id}/executions``:
        executionId, kind, status, exitCode, durationMs, transport, ...). The server
        writes a row just after the execution's answer, so the newest may lag a moment."""
        limit = max(1, min(int(limit), 100))
        d = self._t.json("GET", f"/sandboxes/{seg(self.id)}/executions",
                         params={"limit": limit, "offset": max(0, int(offset))})
        p = d.get("pagination") or {}
        return Page(items=list(d.get("executions") or []), limit=int(p.get("limit", limit)),
                    offset=int(p.get("offset", offset)), total=int(p.get("total", 0)))

    def terminate(self) -> None:
        """Deletes the sandbox; a sandbox already gone is not an error."""
        try:
            self._t.request("DELETE", f"/sandboxes/{seg(self.id)}")
        except NotFound:
            pass
        self.terminated = True

    def close(self) -> None:
        """Terminates when ``terminate_on_exit``; releases the HTTP session."""
        try:
            if self.terminate_on_exit and not self.terminated and self.id:
                self.terminate()
        finally:
            if self._own_client:
                self.client.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        st = self.info.get("status")
        return f"Sandbox(id={self.id!r}, runtime={self.runtime!r}, status={st!r})"

    # -- executions ------------------------------------------------------------------

    def _execute(self, kind: str, content: str, language: Optional[str], timeout: Optional[int],
                 env: Optional[Dict[str, str]], working_dir: Optional[str],
                 stdin: Union[str, bytes, None]) -> ExecutionResult:
        body: Dict[str, Any] = {"type": kind, "content": content}
        if language is not None:
            body["language"] = language
        if timeout is not None:
            body["timeout"] = timeout
        if env:
            body["env"] = dict(env)
        if working_dir is not None:
            body["workingDir"] = working_dir
        if stdin is not None:
            body["stdin"] = utf8_text(stdin, "stdin")
        read = (timeout + EXEC_READ_MARGIN_S) if isinstance(timeout, int) and timeout > 0 \
            else EXEC_DEFAULT_READ_S
        d = self._t.json("POST", f"/sandboxes/{seg(self.id)}/execute", json=body,
                         read_timeout=max(read, self._t.request_timeout))
        return ExecutionResult.from_json(d)

    def run_code(self, code: str, language: Optional[str] = None, timeout: Optional[int] = None,
                 env: Optional[Dict[str, str]] = None, working_dir: Optional[str] = None,
                 stdin: Union[str, bytes, None] = None) -> ExecutionResult:
        """Runs code (in ``language``, default the runtime's) and waits for it. A program
        that fails is a result with ``ok`` false, not an exception. ``timeout`` in s."""
        return self._execute("code", code, language, timeout, env, working_dir, stdin)

    def run_command(self, cmd: Union[str, Iterable[str]], timeout: Optional[int] = None,
                    env: Optional[Dict[str, str]] = None, working_dir: Optional[str] = None,
                    stdin: Union[str, bytes, None] = None) -> ExecutionResult:
        """Runs a shell command (a string, or a list of arguments that is quoted)."""
        return self._execute("command", _command(cmd), None, timeout, env, working_dir, stdin)

    def _stream(self, mode: str, content: str, language: Optional[str], timeout: Optional[int],
                env: Optional[Dict[str, str]], working_dir: Optional[str],
                stdin: Union[str, bytes, None], keep_stdin_open: bool,
                idle_timeout: Optional[float]) -> ExecutionStream:
        return ExecutionStream(self._t.api_url, self._t.api_key, self.id, mode=mode,
                               content=content, language=language, timeout=timeout, env=env,
                               working_dir=working_dir, stdin=stdin,
                               keep_stdin_open=keep_stdin_open,
                               connect_timeout=self._t.connect_timeout,
                               idle_timeout=idle_timeout)

    def stream_code(self, code: str, language: Optional[str] = None,
                    timeout: Optional[int] = None, env: Optional[Dict[str, str]] = None,
                    working_dir: Optional[str] = None, stdin: Union[str, bytes, None] = None,
                    keep_stdin_open: bool = False,
                    idle_timeout: Optional[float] = None) -> ExecutionStream:
        """Runs code over the WebSocket: iterate the returned stream for OutputChunk
        objects as they arrive; ``stream.result`` after it ends; ``stream.cancel()``."""
        return self._stream("code", code, language, timeout, env, working_dir, stdin,
                            keep_stdin_open, idle_timeout)

    def stream_command(self, cmd: Union[str, Iterable[str]], timeout: Optional[int] = None,
                       env: Optional[Dict[str, str]] = None, working_dir: Optional[str] = None,
                       stdin: Union[str, bytes, None] = None, keep_stdin_open: bool = False,
                       idle_timeout: Optional[float] = None) -> ExecutionStream:
        """stream_code for a shell command."""
        return self._stream("command", _command(cmd), None, timeout, env, working_dir, stdin,
                            keep_stdin_open, idle_timeout)

    def install(self, packages: Union[str, Iterable[str]], manager: Optional[str] = None,
                check: bool = True) -> ExecutionResult:
        """Installs packages (``manager`` "pip" or "npm"; None: the runtime's). Raises
        NetworkAccessDisabled when the sandbox has no egress, ValidationError for a bad
        name, and (``check``) PackageInstallError when the package manager fails."""
        pkgs = [packages] if isinstance(packages, str) else list(packages)
        body: Dict[str, Any] = {"packages": pkgs}
        if manager is not None:
            body["manager"] = manager
        d = self._t.json("POST", f"/sandboxes/{seg(self.id)}/packages", json=body,
                         read_timeout=INSTALL_READ_S)
        result = ExecutionResult.from_json(d)
        if check and not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise PackageInstallError(f"installing {', '.join(pkgs)} failed ({result.status}, "
                                      f"exit code {result.exit_code}): {' | '.join(tail)}",
                                      result=result, code=result.status)
        return result

    # -- files -----------------------------------------------------------------------

    def upload_file(self, remote: str, data_or_local_path: Union[Data, str, os.PathLike, Any]
                    ) -> Dict[str, Any]:
        """Writes a file in the sandbox (parents created). The content is bytes, a local
        file's path (str or PathLike), or a binary file object. Returns ``{path, size,
        createdAt}``. Text: pass ``text.encode()``."""
        src = data_or_local_path
        url = _file_url(self.id, remote)
        hdr = {"Content-Type": "application/octet-stream"}
        if isinstance(src, (bytes, bytearray, memoryview)):
            return self._t.json("PUT", url, data=bytes(src), headers=hdr)
        if isinstance(src, (str, os.PathLike)):
            with open(src, "rb") as f:
                return self._t.json("PUT", url, data=f, headers=hdr)
        if hasattr(src, "read"):
            return self._t.json("PUT", url, data=src.read(), headers=hdr)
        raise ValidationError("upload_file needs bytes, a local path or a binary file object",
                              fields={"data_or_local_path": type(src).__name__})

    def download_file(self, remote: str, local: Union[str, os.PathLike, None] = None,
                      max_bytes: int = MAX_DOWNLOAD) -> bytes:
        """Reads a file of the sandbox and returns its bytes; also writes them to
        ``local`` when given. More than ``max_bytes`` is an error."""
        r = self._t.request("GET", _file_url(self.id, remote), stream=True,
                            headers={"Accept": "application/octet-stream, application/json"})
        try:
            buf = bytearray()
            for chunk in r.iter_content(65536):
                buf += chunk
                if len(buf) > max_bytes:
                    raise SandboxError(f"{remote}: larger than max_bytes={max_bytes}",
                                       code="too_large")
        finally:
            r.close()
        data = bytes(buf)
        if local is not None:
            with open(local, "wb") as f:
                f.write(data)
        return data

    def list_files(self, path: str = "/workspace") -> List[FileInfo]:
        """The entries of a directory of the sandbox."""
        d = self._t.json("GET", f"/sandboxes/{seg(self.id)}/files",
                         params={"path": remote_path(path)})
        return [FileInfo.from_json(e) for e in d.get("files") or [] if isinstance(e, dict)]

    def delete_file(self, path: str, recursive: bool = False) -> None:
        """Deletes a file, or a directory (non-empty ones only with ``recursive``)."""
        self._t.request("DELETE", _file_url(self.id, path),
                        params={"recursive": "true"} if recursive else None)


def _command(cmd: Union[str, Iterable[str]]) -> str:
    if isinstance(cmd, str):
        return cmd
    import shlex
    return " ".join(shlex.quote(str(a)) for a in cmd)
