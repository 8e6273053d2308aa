#!/usr/bin/env python3
"""quickstart: a first session with the LLMSafeSpace Python SDK.

Needs a running system (`make run` prints the API URL and the admin key):
    export LLMSAFESPACE_API_URL=http://127.0.0.1:8080/api/v1
    export LLMSAFESPACE_API_KEY=lsp_...
    python3 quickstart.py
"""

import sys

from llmsafespace import Client, Sandbox


def main():
    print("runtimes:", ", ".join(r["runtime"] for r in Client().runtimes()))
    with Sandbox(runtime="python:3.11") as sb:  # terminated when the block ends
        print(f"sandbox {sb.id} (from a warm pool: {sb.warm_pool})")

        r = sb.run_code("import sys; print('hello from', sys.platform); sys.exit(3)")
        print(f"run_code: status={r.status} exit_code={r.exit_code} stdout={r.stdout!r}")

        print("stream_code:", end=" ", flush=True)
        stream = sb.stream_code("import time\nfor i in range(3):\n"
                                "    print(i, flush=True); time.sleep(0.3)")
        for chunk in stream:  # printed as the program writes it
            print(chunk.text.strip(), end=" ", flush=True)
        print(f"-> {stream.result.status}")

        sb.upload_file("data/input.csv", b"a,b\n1,2\n")
        print("run_command:", sb.run_command("wc -l data/input.csv").stdout.strip())
        print("files:", [f.name for f in sb.list_files("data")])
        print("download:", sb.download_file("data/input.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
