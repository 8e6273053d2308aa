"""test_e2e_files: a sandbox's files through /sandboxes/{id}/files of a running system.

Upload, download, list and delete; binary content (every byte value) and a 10 MB file
round-trip exactly; paths with and without a leading slash, relative ones under
/workspace, /tmp, nested directories made on upload; and traversal, which must never
reach the host: `..` segments (sent raw, also percent-encoded), absolute paths outside
the writable roots in ?path=, and symlinks pointing out made inside the sandbox by a
command — refused (403), never served; whatever an attempt answers, the host's
/etc/passwd never comes back and nothing lands outside /workspace and /tmp.
"""

import hashlib
import http.client
import json
import os
from urllib.parse import urlsplit

import pytest

from e2e_lib import assert_error

HOST_PASSWD = open("/etc/passwd", "rb").read()


@pytest.fixture(scope="module")
def sid(shared_sb):
    return shared_sb["id"]


def raw_request(api, method, path, body=None):
    """One request with the path exactly as given (requests would normalise `..`)."""
    u = urlsplit(api.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request(method, u.path + path, body=body,
                  headers={"Authorization": f"Bearer {api.token}"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_upload_download_list_delete(user, sid):
    r = user.put(f"/sandboxes/{sid}/files/notes.txt", data=b"hello\n")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["path"] == "/workspace/notes.txt" and body["size"] == 6 and body["createdAt"]

    for spelling in ("notes.txt", "/workspace/notes.txt", "workspace/notes.txt",
                     "%2Fworkspace%2Fnotes.txt"):
        g = user.get(f"/sandboxes/{sid}/files/{spelling}")
        assert g.status_code == 200, (spelling, g.text)
        assert g.content == b"hello\n"
        assert "attachment" in g.headers.get("Content-Disposition", "")
    # the program sees the same file
    assert user.execute(sid, "cat /workspace/notes.txt")["stdout"] == "hello\n"
    # and the API sees what the program writes
    user.execute(sid, "mkdir -p /workspace/made/by && printf 'x%.0s' $(seq 5) > "
                      "/workspace/made/by/cmd.txt")
    assert user.get(f"/sandboxes/{sid}/files/made/by/cmd.txt").content == b"xxxxx"

    # nested upload creates the parents; list them
    r = user.put(f"/sandboxes/{sid}/files//workspace/deep/er/leaf.bin", data=b"\x00" * 3)
    assert r.status_code == 200 and r.json()["path"] == "/workspace/deep/er/leaf.bin", r.text
    ls = user.get(f"/sandboxes/{sid}/files", params={"path": "/workspace/deep"}).json()
    assert ls["path"] == "/workspace/deep"
    assert [(f["name"], f["isDirectory"], f["isDir"]) for f in ls["files"]] == [
        ("er", True, True)]
    ls = user.get(f"/sandboxes/{sid}/files", params={"path": "deep/er"}).json()
    (leaf,) = ls["files"]
    assert leaf["name"] == "leaf.bin" and leaf["path"] == "/workspace/deep/er/leaf.bin"
    assert leaf["size"] == 3 and leaf["isDirectory"] is False
    for k in ("mode", "createdAt", "modifiedAt"):
        assert k in leaf
    top = user.get(f"/sandboxes/{sid}/files").json()
    assert top["path"] == "/workspace"
    assert {"notes.txt", "deep", "made"} <= {f["name"] for f in top["files"]}

    # /tmp is the other writable root
    r = user.put(f"/sandboxes/{sid}/files/tmp/e2e-t.txt", data=b"t")
    assert r.status_code == 200 and r.json()["path"] == "/tmp/e2e-t.txt"
    assert user.execute(sid, "cat /tmp/e2e-t.txt")["stdout"] == "t"

    # overwrite, then delete
    assert user.put(f"/sandboxes/{sid}/files/notes.txt", data=b"v2").status_code == 200
    assert user.get(f"/sandboxes/{sid}/files/notes.txt").content == b"v2"
    d = user.delete(f"/sandboxes/{sid}/files/notes.txt")
    assert d.status_code == 200 and d.json()["message"], d.text
    assert_error(user.get(f"/sandboxes/{sid}/files/notes.txt"), 404)
    assert_error(user.delete(f"/sandboxes/{sid}/files/notes.txt"), 404)
    assert user.execute(sid, "test -e /workspace/notes.txt; echo $?")["stdout"] == "1\n"

    # a directory: not downloadable, and only deleted recursively when not empty
    assert_error(user.get(f"/sandboxes/{sid}/files/deep"), 400)
    r = user.delete(f"/sandboxes/{sid}/files/deep")
    assert r.status_code in (400, 409), r.text
    assert user.get(f"/sandboxes/{sid}/files/deep/er/leaf.bin").status_code == 200
    assert user.delete(f"/sandboxes/{sid}/files/deep?recursive=true").status_code == 200
    assert_error(user.get(f"/sandboxes/{sid}/files/deep/er/leaf.bin"), 404)
    assert_error(user.get(f"/sandboxes/{sid}/files", params={"path": "/workspace/nope"}), 404)


def test_binary_and_10mb(user, sid):
    every = bytes(range(256)) * 4
    assert user.put(f"/sandboxes/{sid}/files/every.bin", data=every).json()["size"] == 1024
    assert user.get(f"/sandboxes/{sid}/files/every.bin").content == every
    big = os.urandom(10 * 1000 * 1000)
    r = user.put(f"/sandboxes/{sid}/files/big/ten.bin", data=big, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["size"] == len(big)
    g = user.get(f"/sandboxes/{sid}/files/big/ten.bin", timeout=120)
    assert g.status_code == 200 and len(g.content) == len(big)
    assert hashlib.sha256(g.content).digest() == hashlib.sha256(big).digest()
    ex = user.execute(sid, "sha256sum /workspace/big/ten.bin")
    assert ex["stdout"].split()[0] == hashlib.sha256(big).hexdigest()
    user.delete(f"/sandboxes/{sid}/files/big?recursive=true")


def test_traversal_never_reaches_the_host(user, sid):
    attempts = ["../../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "..%2f..%2f..%2fetc%2fpasswd", "workspace/../../etc/passwd",
                "tmp/../../etc/passwd", "/..//../etc/passwd", "%2F..%2F..%2Fetc%2Fpasswd",
                "workspace/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "%2Fetc%2Fpasswd",
                "/proc/self/environ", "..", "."]
    # (no DELETE: an HTTP server removes dot segments, so DELETE .../files/.. is a DELETE
    # of the sandbox itself, as the client literally asked)
    for a in attempts:
        status, body = raw_request(user, "GET", f"/sandboxes/{sid}/files/{a}")
        assert status != 200 or (body != HOST_PASSWD and b"root:x:0:0" not in body), (a, status)
        assert b"root:x:0:0" not in body, a
        status, body = raw_request(user, "PUT", f"/sandboxes/{sid}/files/{a}", body=b"pwned")
        if status == 200:  # mapped inside the sandbox's own roots, never outside
            where = json.loads(body)["path"]
            assert where.startswith(("/workspace/", "/tmp/")), (a, where)
    assert open("/etc/passwd", "rb").read() == HOST_PASSWD
    # ... and the sandbox's own /etc is untouched
    assert "pwned" not in user.execute(sid, "cat /etc/passwd")["stdout"]
    # absolute paths outside the roots and `..` in ?path= are refused outright
    # "/" is the leading slash alone: the same as "" (API.md), i.e. /workspace, not the host's /
    root = user.get(f"/sandboxes/{sid}/files", params={"path": "/"})
    assert root.status_code == 200 and root.json()["path"] == "/workspace", root.text
    for p in ("/etc", "/proc", "/workspace/..", "../", "/tmp/../etc", "deep/../../etc",
              "/usr/bin"):
        err = assert_error(user.get(f"/sandboxes/{sid}/files", params={"path": p}), 403)
        assert "files" not in err


def test_symlink_out_is_refused(user, sid):
    ex = user.execute(sid, "cd /workspace && ln -sf /etc/passwd pw && ln -sfn /etc etc-link "
                      "&& ln -sfn / root-link && ln -sf /proc/1/environ env && ls -l pw")
    assert ex["status"] == "completed", ex
    for p in ("pw", "/workspace/pw", "etc-link/passwd", "root-link/etc/shadow", "env",
              "etc-link"):
        g = user.get(f"/sandboxes/{sid}/files/{p}")
        assert g.status_code in (400, 403), (p, g.status_code, g.content[:200])
        assert b"root:" not in g.content
        assert_error(g, g.status_code)
        r = user.put(f"/sandboxes/{sid}/files/{p}", data=b"pwned")
        assert r.status_code in (400, 403), (p, r.status_code, r.text)
    for p in ("etc-link", "root-link/tmp", "root-link"):
        r = user.get(f"/sandboxes/{sid}/files", params={"path": p})
        assert r.status_code in (400, 403), (p, r.text)
    # a relative symlink that stays inside is served (an absolute one, even to a path
    # inside, is refused: the agent resolves beneath the root, which is conservative)
    user.put(f"/sandboxes/{sid}/files/inside/real.txt", data=b"real")
    user.execute(sid, "ln -sf real.txt /workspace/inside/ok")
    assert user.get(f"/sandboxes/{sid}/files/inside/ok").content == b"real"
    user.execute(sid, "ln -sf ../../etc/passwd /workspace/inside/up")
    assert user.get(f"/sandboxes/{sid}/files/inside/up").status_code in (400, 403)
    # deleting the symlink itself works and leaves the target
    assert user.delete(f"/sandboxes/{sid}/files/pw").status_code in (200, 403)
    assert open("/etc/passwd", "rb").read() == HOST_PASSWD
    user.execute(sid, "rm -f /workspace/pw /workspace/etc-link /workspace/root-link "
                      "/workspace/env")


@pytest.mark.xfail(strict=True, reason="a CR or LF (%0d, %0a) in the file path cuts the path "
                   "short: PUT .../files/n%0aq answers 200 and writes /workspace/n, a file "
                   "the client did not name (libwebsockets ends the decoded URI there; "
                   "lss-api cannot see the rest). It should be refused (400/403)")
def test_cr_lf_in_a_path_is_refused(user, sid):
    for enc in ("%0a", "%0d"):
        status, body = raw_request(user, "PUT", f"/sandboxes/{sid}/files/crlf{enc}tail",
                                   body=b"x")
        assert status in (400, 403), (enc, status, body)
    assert user.get(f"/sandboxes/{sid}/files/crlf").status_code == 404


def test_control_characters_in_a_path_are_refused(user, sid):
    for enc in ("%09", "%7f", "%1b"):
        status, body = raw_request(user, "PUT", f"/sandboxes/{sid}/files/ctl{enc}x", body=b"x")
        assert status in (400, 403), (enc, status, body)
        assert json.loads(body)["error"]["code"] in ("forbidden", "invalid_request")
