"""lss_up: `lss up` (make run) driven from Python — for tests/integration/test_up.py and
every suite that needs the whole system running (tests/e2e, sdk/python/tests).

  Up(data, args)      one `lss up` process on a data directory (output in <data>.out)
  Stack               a whole running system for a test session: start(), api_url,
                      admin_key, stop(); logs of every process for failure reports
  processes_of(data)  pids still tied to a data dir; alive(pid)

Waits poll conditions with deadlines (lss_harness.wait_until).
"""

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import lss_harness as h

API = h.binary("api").exists()
UP_TIMEOUT = 120
STOP_TIMEOUT = 60


class Up:
    """One `lss up` process on a data directory; its output goes to <data>.out."""

    def __init__(self, data, args=()):
        self.data = Path(data)
        self.args = list(args)
        self.out_path = Path(f"{data}.out")
        self.proc = None
        self.offset = 0  # where this run's output starts (a second run appends)
        self.seen_pids = set()

    def argv(self):
        base = ["--listen", "127.0.0.1:0"] + ([] if API else ["--without", "api"])
        return [str(h.LSS), "up", "--data-dir", str(self.data), *base, *self.args]

    def start(self):
        self.offset = self.out_path.stat().st_size if self.out_path.exists() else 0
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=h.clean_environ(),
                                         start_new_session=True)
        return self

    def output(self):
        """This run's output."""
        try:
            with open(self.out_path, "rb") as f:
                f.seek(self.offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_output(self, pattern, timeout=UP_TIMEOUT, start=0):
        def found():
            if re.search(pattern, self.output()[start:]):
                return True
            if self.proc.poll() is not None:
                raise h.HarnessError(f"lss up exited with {self.proc.returncode} while "
                                     f"waiting for {pattern!r}")
            return False
        h.wait_until(found, timeout, f"lss up output matching {pattern!r}")

    def wait_up(self):
        self.wait_output(r"LLMSafeSpace is up")
        self.record_pids()
        return self.status()

    def status(self):
        return json.loads((self.data / "status.json").read_text())

    def record_pids(self):
        for p in self.status()["processes"].values():
            if p["pid"]:
                self.seen_pids.add(p["pid"])

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        return self.proc.wait(timeout)

    def stop(self):
        """SIGINT (Ctrl-C); returns the exit code."""
        self.record_pids()
        self.signal(signal.SIGINT)
        return self.wait_exit()

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def processes_of(data):
    """pids of processes still tied to the data dir: its path in their command line
    (postgres -D, redis-server's config, bwrap binds of sandboxes) or environment."""
    needle = str(data).encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        for what in ("cmdline", "environ"):
            try:
                if needle in (d / what).read_bytes():
                    found.append(int(d.name))
                    break
            except OSError:
                pass
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False



class Stack:
    """A whole system (PostgreSQL, Redis, every service) under one `lss up` on a private
    data dir with the API on a free port. start() waits until it is up and reads the API
    URL and the admin key; stop() stops it (SIGINT, then SIGTERM/SIGKILL) and removes
    every file and process tied to the data dir."""

    def __init__(self, args=(), prefix="lss-st-"):
        self.data = h.short_tmpdir(prefix)
        self.up = Up(self.data, args)
        self.api_url = None
        self.base_url = None
        self.admin_key = None

    def start(self):
        self.up.start()
        st = self.up.wait_up()
        self.api_url = st["api_url"]
        self.base_url = self.api_url[: -len("/api/v1")]
        self.admin_key = (self.data / "admin.key").read_text().strip()
        return self

    def logs(self, tail=40):
        """The tail of lss up's output and of every process's log, for a failure report."""
        parts = [f"===== lss up output ({self.up.out_path}) =====\n{self.up.output()}"]
        for log in sorted((self.data / "logs").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"===== {log} (tail) =====\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self):
        try:
            if self.up.proc and self.up.proc.poll() is None:
                self.up.stop()
        except subprocess.TimeoutExpired:
            pass
        self.up.cleanup()
        for pid in processes_of(self.data):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.data, ignore_errors=True)
        Path(f"{self.data}.out").unlink(missing_ok=True)
