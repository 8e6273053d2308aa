"""lss_harness: building blocks for integration and end-to-end tests of LLMSafeSpace.

Design note: everything runs the real programs from build/bin on loopback, with nothing
shared between test runs. `Postgres` is a throw-away cluster from scripts/pg-tmp;
`Config` builds the LSS_* environment a local-mode machine needs (store DSN, every bus
endpoint as ipc:// in one short private directory, every admin_listen on 127.0.0.1:0 with
the bound port reported through LSS_TEST_PORT_FILE, node.state_dir under the same
directory); `Service` runs one build/bin/lss-<name> with that environment, waits for its
admin port and /readyz, logs to a file and can be stopped (SIGTERM), killed (SIGKILL) and
restarted; `Store` wraps `lss obj` so tests read and write objects as dicts; `metrics`
reads a service's /metrics. Waits are polls of a condition against a deadline, never bare
sleeps. Standard library only (pytest is used by conftest.py, not here).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(os.environ.get("LSS_ROOT") or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("LSS_BUILD_DIR") or ROOT / "build")
BIN = BUILD / "bin"
LSS = BIN / "lss"
PG_TMP = ROOT / "scripts" / "pg-tmp"

# Control-plane services that take the standard service flags and settings.
SERVICES = ("watcher", "reconciler", "warmpool", "executor", "node", "api")
UNIX_PATH_MAX = 107  # sun_path, without the terminating NUL
STATE_DIR_MAX = 60  # node.state_dir bound in common/lss_settings.c
POLL_S = 0.02
# LSS_* variables passed through from the parent (the test driver's own).
_PASS_ENV = ("LSS_BUILD_DIR", "LSS_ROOT")


class HarnessError(Exception):
    """A harness step failed (process died, deadline passed, ...)."""


def wait_until(predicate, timeout, what, interval=POLL_S):
    """Polls predicate() until it returns a true value (returned) or timeout seconds pass
    (HarnessError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def short_tmpdir(prefix="lss-it-"):
    """A new directory directly under /tmp (short: ipc:// paths must fit). Mode 0711:
    others cannot list it, but sandbox uids (lss-node) must traverse it to their
    state dirs below."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o711)
    return d


def clean_environ():
    """os.environ without LSS_* variables (a stray LSS_CONFIG or key must not leak in;
    an unknown one is a configuration error), except the test driver's own."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("LSS_") or k in _PASS_ENV}


def binary(name):
    """Path of build/bin/lss-<name> (or build/bin/lss for name 'lss'); may not exist."""
    return LSS if name == "lss" else BIN / f"lss-{name}"


# ---------------------------------------------------------------- PostgreSQL

class Postgres:
    """A private PostgreSQL cluster (scripts/pg-tmp) in its own directory."""

    def __init__(self, directory=None):
        self.dir = Path(directory) if directory else short_tmpdir("lss-it-pg-")
        self.dsn = None

    @staticmethod
    def available():
        return any(Path(p).joinpath("initdb").exists()
                   for p in Path("/usr/lib/postgresql").glob("*/bin"))

    def start(self, timeout=120):
        r = subprocess.run([str(PG_TMP), "start", str(self.dir)], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0 or not r.stdout.strip():
            raise HarnessError(f"pg-tmp start failed ({r.returncode}): {r.stderr.strip()}")
        self.dsn = r.stdout.strip().splitlines()[-1]
        return self.dsn

    def stop(self):
        subprocess.run([str(PG_TMP), "stop", str(self.dir)], capture_output=True, timeout=60)
        self.dsn = None


# ---------------------------------------------------------------- configuration

class Config:
    """The LSS_* environment of one private local-mode machine.

    base: a short private directory holding the ipc sockets (bus/), port files (ports/),
    logs (logs/) and the node state directory (node/). overrides: extra config keys
    ({"watcher.resync": "1s"}) applied to every service's environment."""

    def __init__(self, dsn, base=None, log_level="debug", overrides=None):
        self.dsn = dsn
        self.base = Path(base) if base else short_tmpdir()
        self.log_level = log_level
        self.overrides = dict(overrides or {})
        for sub in ("bus", "ports", "logs", "node"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)

    def endpoint(self, name):
        """ipc://<base>/bus/<name>; checks the unix socket path length."""
        path = self.base / "bus" / name
        if len(str(path)) > UNIX_PATH_MAX:
            raise HarnessError(f"ipc path too long for a unix socket: {path}")
        return f"ipc://{path}"

    def port_file(self, service):
        return self.base / "ports" / f"{service}.port"

    def log_file(self, service):
        return self.base / "logs" / f"{service}.log"

    @property
    def state_dir(self):
        path = self.base / "node"
        if len(str(path)) > STATE_DIR_MAX:
            raise HarnessError(f"node.state_dir longer than {STATE_DIR_MAX} bytes: {path}")
        return path

    def settings(self):
        """Every config key this machine sets, dotted name -> text value."""
        s = {"store.dsn": self.dsn, "log.level": self.log_level,
             "node.state_dir": str(self.state_dir),
             "watcher.queue_endpoint": self.endpoint("watcher.queue"),
             "reconciler.queue_endpoint": self.endpoint("watcher.queue"),
             "warmpool.queue_endpoint": self.endpoint("watcher.queue"),
             "warmpool.alloc_endpoint": self.endpoint("warmpool.alloc"),
             "executor.router_endpoint": self.endpoint("executor.router"),
             "warmpool.executor_endpoint": self.endpoint("executor.router"),
             "api.listen": f"127.0.0.1:{free_port()}"}
        for svc in SERVICES:
            s[f"{svc}.admin_listen"] = "127.0.0.1:0"
            s[f"{svc}.pub_endpoint"] = self.endpoint(f"{svc}.pub")
        s.update(self.overrides)
        return s

    @staticmethod
    def env_name(key):
        return "LSS_" + key.upper().replace(".", "_").replace("-", "_")

    def env(self, service=None, settings=None):
        """A full process environment: the clean parent environment plus every setting
        (and the extra dotted-key settings given here) as LSS_* and, for a service,
        LSS_TEST_PORT_FILE."""
        env = clean_environ()
        merged = self.settings()
        merged.update(settings or {})
        for key, value in merged.items():
            env[self.env_name(key)] = str(value)
        if service:
            env["LSS_TEST_PORT_FILE"] = str(self.port_file(service))
        return env

    def write_yaml(self, path):
        """Writes the same settings as a YAML config file (for --config); returns path."""
        tree = {}
        for key, value in self.settings().items():
            node = tree
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = value
        lines = []

        def emit(node, indent):
            for k, v in node.items():
                if isinstance(v, dict):
                    lines.append(f"{'  ' * indent}{k}:")
                    emit(v, indent + 1)
                else:
                    lines.append(f"{'  ' * indent}{k}: {json.dumps(str(v))}")
        emit(tree, 0)
        Path(path).write_text("\n".join(lines) + "\n")
        return Path(path)

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- services

def http_get(url, timeout=2.0):
    """(status, body text) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


class Service:
    """One build/bin/lss-<name> process with a Config's environment.

    start() waits for the admin port file and a 200 from /readyz (raising HarnessError
    with the log's tail if the process dies or the deadline passes). The log (stdout and
    stderr) is appended to config.log_file(name) across restarts."""

    def __init__(self, name, config, args=(), settings=None):
        self.name = name
        self.config = config
        self.args = list(args)
        self.settings = dict(settings or {})  # extra config keys for this service only
        self.binary = binary(name)
        self.proc = None
        self.port = None
        self.log_path = config.log_file(name)

    def exists(self):
        return self.binary.exists() and os.access(self.binary, os.X_OK)

    def start(self, timeout=20, ready=True):
        if not self.exists():
            raise HarnessError(f"{self.binary} does not exist (not built yet?)")
        if self.running():
            raise HarnessError(f"lss-{self.name} is already running")
        port_file = self.config.port_file(self.name)
        port_file.unlink(missing_ok=True)
        self.port = None
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: starting lss-{self.name} {self.args}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(self.binary), *self.args], env=self.config.env(self.name, self.settings),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

        def port_known():
            if self.proc.poll() is not None:
                raise HarnessError(f"lss-{self.name} exited with {self.proc.returncode} "
                                   f"during start:\n{self.log_tail()}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            return int(text) if text.isdigit() and int(text) > 0 else None
        try:
            self.port = wait_until(port_known, timeout, f"lss-{self.name}'s admin port file")
            if ready:
                self.wait_ready(timeout)
        except HarnessError as e:
            self.kill()
            raise HarnessError(f"{e}\n--- log tail:\n{self.log_tail()}") from None
        return self

    def wait_ready(self, timeout=20):
        def ok():
            if self.proc.poll() is not None:
                raise HarnessError(f"lss-{self.name} exited with {self.proc.returncode}")
            return self.get("/readyz")[0] == 200
        wait_until(ok, timeout, f"lss-{self.name} /readyz")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, path):
        if not self.port:
            raise HarnessError(f"lss-{self.name} has no admin port (not started)")
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, timeout=2.0):
        return http_get(self.url(path), timeout)

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code. Kills (and raises) past timeout."""
        if not self.proc:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError(f"lss-{self.name} did not stop within {timeout}s of SIGTERM")

    def kill(self):
        """SIGKILL (kill -9) and reap; returns the wait status code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.proc.wait(10)

    def restart(self, timeout=20, kill=False):
        self.kill() if kill else self.stop()
        return self.start(timeout)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self):
        """The log's JSON lines as dicts (other lines skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?\s*$')


def parse_metrics(text):
    """Prometheus text format -> {series: value}; series is 'name' or 'name{a="b",...}'
    exactly as written (labels in the exporter's order)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        try:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        except (AttributeError, ValueError):
            raise HarnessError(f"unparseable metrics line: {line!r}") from None
    return out


def metrics(service):
    """The service's /metrics as {series: value}."""
    status, body = service.get("/metrics")
    if status != 200:
        raise HarnessError(f"lss-{service.name} /metrics answered {status}")
    return parse_metrics(body)


def metric(samples, name, **labels):
    """The value of one series by name and labels (any label order); None if absent."""
    want = {k: str(v) for k, v in labels.items()}
    for series, value in samples.items():
        base, _, rest = series.partition("{")
        if base != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if got == want:
            return value
    return None


# ---------------------------------------------------------------- the store

class LssError(HarnessError):
    """`lss obj` failed: code is its exit code (1 failed, 2 invalid), stderr its message."""

    def __init__(self, args, code, stderr):
        super().__init__(f"lss {' '.join(args)}: exit {code}: {stderr.strip()}")
        self.code = code
        self.stderr = stderr


class Store:
    """The object store through `lss obj` (the real CLI). Objects are dicts."""

    def __init__(self, dsn, lss=LSS):
        self.dsn = dsn
        self.lss = Path(lss)

    def run(self, *args, input=None, check=True, timeout=60):
        argv = [str(self.lss), "obj", "--dsn", self.dsn, *args]
        r = subprocess.run(argv, input=input, capture_output=True, text=True,
                           timeout=timeout, env=clean_environ())
        if check and r.returncode != 0:
            raise LssError(list(args), r.returncode, r.stderr)
        return r

    @staticmethod
    def _text(objs):
        if isinstance(objs, str):
            return objs
        if isinstance(objs, dict):
            objs = [objs]
        return "\n---\n".join(json.dumps(o) for o in objs) + "\n"

    def apply(self, objs, status=False):
        """Applies a dict, a list of dicts or YAML/JSON text. Returns the output lines
        ("sandbox/x created", "... configured", "... unchanged")."""
        args = ["apply", "-f", "-"] + (["--status"] if status else [])
        return self.run(*args, input=self._text(objs)).stdout.splitlines()

    @staticmethod
    def _ns(ns):
        return ["-n", ns] if ns else []

    def get(self, kind, name, ns=None):
        """The object, or None if it does not exist."""
        r = self.run("get", kind, name, *self._ns(ns), "-o", "json", check=False)
        if r.returncode == 1 and "not found" in r.stderr:
            return None
        if r.returncode != 0:
            raise LssError(["get", kind, name], r.returncode, r.stderr)
        return json.loads(r.stdout)

    def list(self, kind, ns=None, selector=None, all_namespaces=False):
        """The List object {metadata: {resourceVersion}, items: [...]}."""
        args = ["get", kind, "-o", "json"] + self._ns(ns)
        if selector:
            args += ["-l", selector]
        if all_namespaces:
            args.append("-A")
        return json.loads(self.run(*args).stdout)

    def items(self, kind, ns=None, selector=None, all_namespaces=False):
        return self.list(kind, ns, selector, all_namespaces)["items"]

    def delete(self, kind, name, ns=None, missing_ok=False):
        r = self.run("delete", kind, name, *self._ns(ns), check=False)
        if r.returncode == 0 or (missing_ok and r.returncode == 1 and "not found" in r.stderr):
            return r.returncode == 0
        raise LssError(["delete", kind, name], r.returncode, r.stderr)

    def set_status(self, kind, name, ns, status):
        """Writes status (dict) through the status subresource."""
        obj = self.get(kind, name, ns)
        if obj is None:
            raise HarnessError(f"{kind}/{name} not found in {ns}")
        obj["status"] = status
        return self.apply(obj, status=True)

    def wait(self, kind, name, ns=None, path=None, value=None, delete=False, timeout=30):
        """Waits (via `lss obj wait`) until .path == value, or deletion. LssError on
        timeout (exit 1; the message holds the last value seen)."""
        cond = "delete" if delete else f"jsonpath={path}={value}"
        if not delete and not (path or "").startswith("."):
            raise HarnessError("path is like .status.phase")
        self.run("wait", kind, name, *self._ns(ns), "--for", cond, "--timeout",
                 str(int(timeout)), timeout=timeout + 30)

    def watch(self, kind, ns=None, from_rv=None, count=None, timeout=10):
        """Events [{type, object}] after from_rv (None: from now), until count events or
        timeout seconds. With count, fewer events than count is an LssError."""
        args = ["watch", kind, *self._ns(ns), "--timeout", str(int(timeout))]
        if from_rv:
            args += ["--from", str(from_rv)]
        if count:
            args += ["--count", str(count)]
        r = self.run(*args, timeout=timeout + 30)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
