"""Fixtures for integration tests (see lss_harness.py for the building blocks).

  pg        session: a private PostgreSQL (scripts/pg-tmp), stopped at the end
  store     session: lss_harness.Store over pg (`lss obj`); skips when build/bin/lss is missing
  config    function: lss_harness.Config (LSS_* environment) in a fresh short /tmp dir,
            removed after the test
  services  function: services.start("watcher", settings={...}) starts build/bin/lss-watcher
            with `config`'s environment (skips the test when that binary does not exist);
            every service started is stopped (then killed) after the test, and the logs
            are printed when the test failed
  namespace function: a namespace of the test's own
"""

import re
import secrets

import pytest

import lss_harness as h


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def pg():
    if not h.Postgres.available():
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)")
    db = h.Postgres()
    try:
        db.start()
    except Exception:
        db.stop()
        raise
    yield db
    db.stop()


@pytest.fixture(scope="session")
def store(pg):
    if not h.LSS.exists():
        pytest.skip(f"{h.LSS} does not exist: run make first")
    return h.Store(pg.dsn)


@pytest.fixture
def config(pg):
    cfg = h.Config(pg.dsn)
    yield cfg
    cfg.remove()


@pytest.fixture
def namespace(request):
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"{base}-{secrets.token_hex(3)}"


class Services:
    """Starts services for one test and cleans them up."""

    def __init__(self, config):
        self.config = config
        self.started = []

    def require(self, name):
        path = h.binary(name)
        if not path.exists():
            pytest.skip(f"{path} does not exist yet (lss-{name} is not built; it is being "
                        f"written separately) — nothing to test against")
        return path

    def start(self, name, args=(), settings=None, timeout=20):
        self.require(name)
        svc = h.Service(name, self.config, args=args, settings=settings)
        self.started.append(svc)
        return svc.start(timeout)

    def cleanup(self, failed):
        for svc in reversed(self.started):
            try:
                if svc.running():
                    svc.stop()
            except h.HarnessError:
                svc.kill()
        if failed:
            for svc in self.started:
                print(f"\n===== log of lss-{svc.name} ({svc.log_path}) =====\n{svc.log_text()}")


@pytest.fixture
def services(request, config):
    s = Services(config)
    yield s
    rep = getattr(request.node, "rep_call", None)
    s.cleanup(failed=bool(rep and rep.failed))
