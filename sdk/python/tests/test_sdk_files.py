"""Files and packages through the SDK: binary round trips, nested directories, local
paths, listing, deleting, /tmp, the traversal and symlink-escape refusals, size limit,
and package installation in a sandbox without network access."""

import os

import pytest

import llmsafespace as lss
from llmsafespace.sandbox import remote_path

ALL_BYTES = bytes(range(256)) * 4


def test_binary_round_trip_nested_dirs(sandbox):
    blob = ALL_BYTES + os.urandom(300_000)
    info = sandbox.upload_file("deep/er/still/blob.bin", blob)
    assert info["path"] == "/workspace/deep/er/still/blob.bin" and info["size"] == len(blob)
    assert sandbox.download_file("/workspace/deep/er/still/blob.bin") == blob
    # the program in the sandbox sees the same bytes
    r = sandbox.run_code("import hashlib; print(hashlib.sha256("
                         "open('/workspace/deep/er/still/blob.bin','rb').read()).hexdigest())")
    import hashlib
    assert r.stdout.strip() == hashlib.sha256(blob).hexdigest()
    # and a file it writes comes back
    sandbox.run_code("open('/workspace/deep/made.bin','wb').write(bytes(range(256)))")
    assert sandbox.download_file("deep/made.bin") == bytes(range(256))
    # empty files, and overwriting
    assert sandbox.upload_file("deep/empty", b"")["size"] == 0
    assert sandbox.download_file("deep/empty") == b""
    sandbox.upload_file("deep/empty", b"now full")
    assert sandbox.download_file("deep/empty") == b"now full"


def test_list_and_delete(sandbox):
    sandbox.upload_file("lst/a.txt", b"a")
    sandbox.upload_file("lst/sub/b.txt", b"bb")
    entries = {f.name: f for f in sandbox.list_files("lst")}
    assert set(entries) == {"a.txt", "sub"}
    assert entries["a.txt"].size == 1 and not entries["a.txt"].is_dir
    assert entries["a.txt"].path == "/workspace/lst/a.txt"
    assert entries["sub"].is_dir
    assert [f.name for f in sandbox.list_files("/workspace/lst/sub")] == ["b.txt"]
    sandbox.delete_file("lst/a.txt")
    with pytest.raises(lss.NotFound):
        sandbox.download_file("lst/a.txt")
    with pytest.raises(lss.Conflict):
        sandbox.delete_file("lst")  # not empty
    sandbox.delete_file("lst", recursive=True)
    assert "lst" not in {f.name for f in sandbox.list_files()}
    with pytest.raises(lss.NotFound):
        sandbox.list_files("lst")


def test_tmp_and_odd_names(sandbox):
    sandbox.upload_file("/tmp/sdk-tmp.txt", b"in tmp")
    assert sandbox.run_command("cat /tmp/sdk-tmp.txt").stdout == "in tmp"
    # a relative "tmp/..." is under /workspace, not /tmp
    sandbox.upload_file("tmp/rel.txt", b"in workspace")
    assert sandbox.run_command("cat /workspace/tmp/rel.txt").stdout == "in workspace"
    name = "sp ace?#%&é.txt"
    sandbox.upload_file(name, b"odd")
    assert sandbox.download_file(name) == b"odd"
    assert name in {f.name for f in sandbox.list_files("/workspace")}


def test_local_paths_and_file_objects(sandbox, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(ALL_BYTES)
    sandbox.upload_file("local/src.bin", src)
    sandbox.upload_file("local/src2.bin", str(src))
    with open(src, "rb") as f:
        sandbox.upload_file("local/src3.bin", f)
    dst = tmp_path / "dst.bin"
    for n in ("src.bin", "src2.bin", "src3.bin"):
        assert sandbox.download_file(f"local/{n}", dst) == ALL_BYTES
        assert dst.read_bytes() == ALL_BYTES
    with pytest.raises(FileNotFoundError):
        sandbox.upload_file("local/x", tmp_path / "missing")
    with pytest.raises(lss.ValidationError):
        sandbox.upload_file("local/x", 12345)


def test_traversal_refused(sandbox):
    for bad in ("../etc/passwd", "a/../../etc/passwd", "/workspace/../etc/passwd"):
        with pytest.raises(lss.ValidationError) as e:
            sandbox.download_file(bad)
        assert "path" in e.value.fields
        with pytest.raises(lss.ValidationError):
            sandbox.upload_file(bad, b"x")
    for outside in ("/etc/passwd", "/proc/self/environ", "/"):
        with pytest.raises(lss.ValidationError):
            sandbox.download_file(outside)
    with pytest.raises(lss.ValidationError):
        sandbox.list_files("/etc")
    with pytest.raises(lss.ValidationError):
        remote_path("a\nb")
    assert remote_path("x//y/./z/") == "/workspace/x/y/z"


def test_server_refuses_symlink_escape(sandbox):
    # the server's own check, past the SDK's: a symlink inside /workspace to /etc
    assert sandbox.run_command("ln -sfn /etc /workspace/etc-link").ok
    with pytest.raises(lss.PermissionDenied) as e:
        sandbox.download_file("etc-link/passwd")
    assert e.value.status == 403 and e.value.code == "forbidden"
    with pytest.raises(lss.PermissionDenied):
        sandbox.upload_file("etc-link/evil", b"x")


def test_missing_file_and_directory_download(sandbox):
    with pytest.raises(lss.NotFound) as e:
        sandbox.download_file("no/such/file")
    assert e.value.status == 404
    sandbox.upload_file("adir/f", b"1")
    with pytest.raises(lss.ValidationError):
        sandbox.download_file("adir")  # a directory: 400


def test_too_large_upload(sandbox):
    # api.max_file is 64 MiB by default; the server answers 413 from Content-Length
    with pytest.raises(lss.PayloadTooLarge) as e:
        sandbox.upload_file("huge.bin", bytes(64 * 1024 * 1024 + 1))
    assert e.value.status == 413


def test_install_without_network(sandbox):
    # lss up's sandboxes have no networkAccess.egress: the server refuses with 409
    with pytest.raises(lss.NetworkAccessDisabled) as e:
        sandbox.install(["requests"])
    assert e.value.status == 409 and "network" in str(e.value)
    assert isinstance(e.value, lss.Conflict)
    with pytest.raises(lss.ValidationError) as e:
        sandbox.install(["ok-name", "bad name; rm -rf /"])
    assert "packages[1]" in e.value.fields
    with pytest.raises(lss.ValidationError) as e:
        sandbox.install("numpy", manager="apt")
    assert e.value.fields
