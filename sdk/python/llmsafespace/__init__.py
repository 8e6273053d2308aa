"""llmsafespace: the Python SDK of LLMSafeSpace (run untrusted code in sandboxes).

    from llmsafespace import Sandbox
    with Sandbox(runtime="python:3.11") as sb:      # LLMSAFESPACE_API_KEY / _API_URL
        print(sb.run_code("print(6 * 7)").stdout)   # 42

Sandbox creates or attaches to a sandbox; Client lists sandboxes, runtimes, warm pools;
every error is an LLMSafeSpaceError (see llmsafespace.errors). Depends only on requests
and websocket-client.
"""

__version__ = "0.1.0"

from .errors import (AuthenticationError, Conflict, ConnectionError, ExecutionError,  # noqa: E402
                     ExecutionTimeout, LLMSafeSpaceError, NetworkAccessDisabled, NotFound,
                     PackageInstallError, PayloadTooLarge, PermissionDenied, RateLimited,
                     RequestTimeout, SandboxError, SandboxNotRunning, ServerError,
                     ServiceUnavailable, StreamError, ValidationError)
from .models import ExecutionResult, FileInfo, OutputChunk, Page, SandboxStatus  # noqa: E402
from .stream import ExecutionStream  # noqa: E402
from .sandbox import Sandbox  # noqa: E402
from .client import Client  # noqa: E402

__all__ = [
    "Sandbox", "Client", "ExecutionStream", "ExecutionResult", "OutputChunk", "FileInfo",
    "SandboxStatus", "Page", "LLMSafeSpaceError", "AuthenticationError", "PermissionDenied",
    "NotFound", "Conflict", "ValidationError", "PayloadTooLarge", "RateLimited", "ServerError",
    "ServiceUnavailable", "SandboxError", "SandboxNotRunning", "NetworkAccessDisabled",
    "ExecutionError", "ExecutionTimeout", "PackageInstallError", "StreamError",
    "ConnectionError", "RequestTimeout", "__version__",
]
