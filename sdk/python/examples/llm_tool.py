#!/usr/bin/env python3
"""llm_tool: LLMSafeSpace as a code-execution tool for an LLM agent.

RUN_PYTHON_TOOL is the tool's schema in the shape OpenAI's function calling takes
(ANTHROPIC_TOOL is the same for Anthropic's tool use); when the model calls it, pass its
``code`` argument to ``run_python`` and send the returned string back as the tool result.
The code runs in one sandbox kept for the whole conversation (files and installed
packages persist between calls), never on this machine; the output given back to the
model is trimmed so a runaway print cannot flood its context.

Run as a script against a running system (LLMSAFESPACE_API_KEY, LLMSAFESPACE_API_URL):
    python3 llm_tool.py                 # runs a few tool calls an LLM might make
    python3 llm_tool.py 'print(2 ** 100)'
LLM_TOOL_TIMEOUT_S (default 30) bounds each call.
"""

import atexit
import os
import sys

from llmsafespace import LLMSafeSpaceError, Sandbox

MAX_OUTPUT_CHARS = 4000  # of the tool result returned to the model
EXEC_TIMEOUT_S = int(os.environ.get("LLM_TOOL_TIMEOUT_S", "30"))  # per tool call

RUN_PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "run_python",
        "description": (
            "Run Python 3 code in an isolated sandbox and return its stdout, stderr and "
            "exit code. State (files in /workspace) persists between calls. No network. "
            f"Each run is stopped after {EXEC_TIMEOUT_S} seconds."),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source to run"}},
            "required": ["code"],
        },
    },
}

ANTHROPIC_TOOL = {
    "name": RUN_PYTHON_TOOL["function"]["name"],
    "description": RUN_PYTHON_TOOL["function"]["description"],
    "input_schema": RUN_PYTHON_TOOL["function"]["parameters"],
}

_sandbox = None


def _get_sandbox():
    global _sandbox
    if _sandbox is None:
        _sandbox = Sandbox(runtime="python:3.11", timeout=1800)
        atexit.register(_sandbox.terminate)
    return _sandbox


def _trim(text, limit):
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"


def run_python(code: str) -> str:
    """The tool: runs code in the sandbox and returns a short report for the model."""
    try:
        r = _get_sandbox().run_code(code, timeout=EXEC_TIMEOUT_S)
    except LLMSafeSpaceError as e:  # the platform could not run it: tell the model
        return f"error: could not run the code: {e.message}"
    parts = []
    if r.stdout:
        parts.append("stdout:\n" + r.stdout)
    if r.stderr:
        parts.append("stderr:\n" + r.stderr)
    if r.status == "timeout":
        parts.append(f"the code was stopped after {EXEC_TIMEOUT_S} s")
    elif r.stdout_truncated or r.stderr_truncated:
        parts.append("(output was cut by the sandbox)")
    parts.append(f"exit code: {r.exit_code}")
    return _trim("\n".join(parts), MAX_OUTPUT_CHARS)


def handle_tool_call(name: str, arguments: dict) -> str:
    """Dispatches a tool call from the model (name and parsed JSON arguments)."""
    if name != "run_python" or not isinstance(arguments.get("code"), str):
        return f"error: unknown tool {name!r} or missing 'code'"
    return run_python(arguments["code"])


def main(argv):
    calls = argv[1:] or [
        "import math\nprint(math.factorial(20))",
        "open('notes.txt', 'w').write('kept between calls')",
        "print(open('notes.txt').read())",
        "print('\\n'.join(str(i) for i in range(100000)))",
        "1 / 0",
    ]
    for code in calls:
        print(f">>> run_python({code!r})")
        print(handle_tool_call("run_python", {"code": code}))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
