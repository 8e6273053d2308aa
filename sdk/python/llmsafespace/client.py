"""Client: account-level calls of the API (sandboxes list, runtimes, warm pools, user).

A Client holds one Transport (API URL, key, timeouts, HTTP session); Sandbox objects
made with ``client=`` share it. Lists are paged by the server (``limit`` ≤ 100); the
``iter_*`` generators walk every page, bounded by the ``total`` the server reports so a
misbehaving server cannot make them loop forever.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

from ._http import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, Transport, seg
from .models import Page

MAX_PAGE = 100


class Client:
    """Access to one LLMSafeSpace API with one credential.

    ``api_key`` / ``api_url`` default to LLMSAFESPACE_API_KEY / LLMSAFESPACE_API_URL
    (URL default http://127.0.0.1:8080/api/v1); ``request_timeout`` is the read timeout
    of every ordinary call, in seconds."""

    def __init__(self, api_key: Optional[str] = None, api_url: Optional[str] = None, *,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S, session: Any = None):
        self.transport = Transport(api_key, api_url, request_timeout=request_timeout,
                                   connect_timeout=connect_timeout, session=session)

    @property
    def api_url(self) -> str:
        return self.transport.api_url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- generic paging --------------------------------------------------------------

    def _page(self, path: str, key: str, limit: int, offset: int) -> Page:
        limit = max(1, min(int(limit), MAX_PAGE))
        d = self.transport.json("GET", path, params={"limit": limit, "offset": max(0, offset)})
        p = d.get("pagination") or {}
        return Page(items=list(d.get(key) or []), limit=int(p.get("limit", limit)),
                    offset=int(p.get("offset", offset)), total=int(p.get("total", 0)))

    def _iter(self, path: str, key: str, page_size: int) -> Iterator[Dict[str, Any]]:
        offset = 0
        while True:
            page = self._page(path, key, page_size, offset)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    # -- sandboxes -------------------------------------------------------------------

    def list_sandboxes(self, limit: int = 10, offset: int = 0) -> Page:
        """One page of the caller's sandboxes (newest first) as Sandbox JSON dicts."""
        return self._page("/sandboxes", "sandboxes", limit, offset)

    def iter_sandboxes(self, page_size: int = MAX_PAGE) -> Iterator[Dict[str, Any]]:
        """Every sandbox of the caller, page after page."""
        return self._iter("/sandboxes", "sandboxes", page_size)

    def get_sandbox(self, sandbox_id: str) -> Dict[str, Any]:
        return self.transport.json("GET", f"/sandboxes/{seg(sandbox_id)}")

    def sandbox(self, sandbox_id: str, **kw: Any) -> "Sandbox":
        """Attaches to an existing sandbox (a Sandbox that does not terminate on exit)."""
        from .sandbox import Sandbox
        return Sandbox(sandbox_id=sandbox_id, client=self, **kw)

    def create_sandbox(self, runtime: str, **kw: Any) -> "Sandbox":
        """Creates a sandbox (keyword arguments as Sandbox's)."""
        from .sandbox import Sandbox
        return Sandbox(runtime=runtime, client=self, **kw)

    # -- runtimes, profiles, warm pools, user ----------------------------------------

    def runtimes(self) -> List[Dict[str, Any]]:
        return list(self._iter("/runtimes", "runtimes", MAX_PAGE))

    def runtime(self, name: str) -> Dict[str, Any]:
        return self.transport.json("GET", f"/runtimes/{seg(name)}")

    def profiles(self) -> List[Dict[str, Any]]:
        return list(self._iter("/profiles", "profiles", MAX_PAGE))

    def warm_pools(self) -> List[Dict[str, Any]]:
        return list(self._iter("/warmpools", "warmpools", MAX_PAGE))

    def warm_pool(self, name: str) -> Dict[str, Any]:
        return self.transport.json("GET", f"/warmpools/{seg(name)}")

    def warm_pool_status(self, name: Optional[str] = None) -> Dict[str, Any]:
        """One pool's status, or with no name the global status of every pool."""
        path = f"/warmpools/{seg(name)}/status" if name else "/warmpools/status"
        return self.transport.json("GET", path)

    def user(self) -> Dict[str, Any]:
        """The caller: ``{id, username, email, role, createdAt}``."""
        return self.transport.json("GET", "/user")


from .sandbox import Sandbox  # noqa: E402  (for the type names above)
