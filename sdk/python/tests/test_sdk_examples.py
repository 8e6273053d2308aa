"""The examples run as scripts against the system, configured only by the environment."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(api, name, *args, **extra_env):
    env = dict(os.environ, LLMSAFESPACE_API_URL=api[0], LLMSAFESPACE_API_KEY=api[1],
               PYTHONPATH=str(EXAMPLES.parent), **extra_env)
    p = subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_quickstart(api):
    out = run_example(api, "quickstart.py")
    assert "python:3.11" in out.splitlines()[0]
    assert "run_code: status=failed exit_code=3 stdout='hello from linux\\n'" in out
    assert "stream_code: 0 1 2 -> completed" in out
    assert "run_command: 2 data/input.csv" in out
    assert "download: b'a,b\\n1,2\\n'" in out


def test_llm_tool(api):
    out = run_example(api, "llm_tool.py")
    assert "2432902008176640000" in out
    assert "kept between calls" in out  # state persists between tool calls
    assert "characters cut" in out  # 100 000 lines trimmed to MAX_OUTPUT_CHARS
    assert "ZeroDivisionError" in out and "exit code: 1" in out
    out = run_example(api, "llm_tool.py", "print('slow', flush=True)\nimport time\n"
                      "time.sleep(60)", LLM_TOOL_TIMEOUT_S="1")
    assert "stdout:\nslow\n" in out and "stopped after 1 s" in out


def test_llm_tool_schema():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import llm_tool
    finally:
        sys.path.remove(str(EXAMPLES))
    fn = llm_tool.RUN_PYTHON_TOOL["function"]
    assert fn["name"] == "run_python" and fn["parameters"]["required"] == ["code"]
    assert llm_tool.ANTHROPIC_TOOL["input_schema"] is fn["parameters"]
    assert llm_tool.handle_tool_call("rm_rf", {}).startswith("error:")
    assert len(llm_tool._trim("y" * 10000, 100)) < 200
