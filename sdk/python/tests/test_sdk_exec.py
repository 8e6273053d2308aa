"""REST executions through the SDK: results, exit codes, stderr, timeouts, stdin, env,
working directory, argument quoting, non-UTF-8 output, raise_for_status."""

import pytest

import llmsafespace as lss


def test_run_code_success(sandbox):
    r = sandbox.run_code("import sys; print('hello'); print(sys.version_info[0])")
    assert r.ok and r.status == "completed" and r.exit_code == 0
    assert r.stdout == "hello\n3\n" and r.stderr == ""
    assert r.execution_id and r.execution_id.startswith("exe-")
    assert r.duration_ms >= 0 and "cpuMs" in r.usage and "maxRssKb" in r.usage
    assert r.stdout_truncated is False and r.stderr_truncated is False
    assert r.raise_for_status() is r


def test_run_code_exit_code_and_stderr(sandbox):
    r = sandbox.run_code("import sys\nprint('out')\nprint('oops', file=sys.stderr)\nsys.exit(7)")
    assert not r.ok and r.status == "failed" and r.exit_code == 7
    assert r.stdout == "out\n" and r.stderr == "oops\n"
    with pytest.raises(lss.ExecutionError) as e:
        r.raise_for_status()
    assert e.value.result is r and not isinstance(e.value, lss.ExecutionTimeout)
    r = sandbox.run_code("raise ValueError('boom')")
    assert r.exit_code == 1 and "ValueError: boom" in r.stderr


def test_timeout_gives_status_timeout(sandbox):
    r = sandbox.run_code("import time\nprint('before', flush=True)\ntime.sleep(30)", timeout=1)
    assert r.status == "timeout" and r.timed_out and not r.ok
    assert r.stdout == "before\n"
    with pytest.raises(lss.ExecutionTimeout) as e:
        r.raise_for_status()
    assert e.value.result is r


def test_stdin_env_and_working_dir(sandbox):
    r = sandbox.run_code("import os, sys\nprint(sys.stdin.read().upper())\n"
                         "print(os.environ['GREETING'])\nprint(os.getcwd())",
                         stdin="from stdin", env={"GREETING": "hi there"}, working_dir="/tmp")
    assert r.ok, r
    assert r.stdout == "FROM STDIN\nhi there\n/tmp\n"
    r = sandbox.run_command("cat; echo; pwd", stdin=b"bytes in", working_dir="/workspace")
    assert r.stdout == "bytes in\n/workspace\n"
    with pytest.raises(lss.ValidationError) as e:
        sandbox.run_command("cat", stdin=b"\xff not utf-8")
    assert "stdin" in e.value.fields


def test_run_command_string_and_list(sandbox):
    assert sandbox.run_command("echo $((6 * 7)) | tr 4 x").stdout == "x2\n"
    # a list is quoted: no expansion, no word splitting, no command injection
    r = sandbox.run_command(["printf", "%s|", "a b", "$HOME", "; echo injected"])
    assert r.stdout == "a b|$HOME|; echo injected|"
    r = sandbox.run_command("exit 3")
    assert r.exit_code == 3 and r.status == "failed"


def test_non_utf8_output(sandbox):
    r = sandbox.run_code("import sys; sys.stdout.buffer.write(b'\\xff\\xfeok\\n')")
    assert r.ok and r.stdout_bytes == b"\xff\xfeok\n"
    assert r.stdout.endswith("ok\n") and "\ufffd" in r.stdout


def test_execute_validation_error(sandbox):
    with pytest.raises(lss.ValidationError) as e:
        sandbox.run_code("print(1)", timeout=100000)
    assert "timeout" in e.value.fields and e.value.status == 400
    with pytest.raises(lss.ValidationError) as e:
        sandbox.run_code("print(1)", working_dir="/etc")
    assert "workingDir" in e.value.fields
    with pytest.raises(lss.ValidationError) as e:
        sandbox.run_code("print(1)", language="cobol")
    assert "language" in e.value.fields
