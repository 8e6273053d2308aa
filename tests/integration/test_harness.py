"""test_harness: the integration harness itself, with what exists today.

The store half runs for real (private PostgreSQL + `lss obj` through lss_harness.Store).
The service half (Service start/readyz/metrics/SIGTERM/kill -9/restart) needs a control-
plane binary that takes the standard service flags (lss_service); until one of
build/bin/lss-{watcher,reconciler,warmpool,executor,node} exists those tests skip, saying
which binary is missing. No stand-in server is used: a fake would only test itself.
"""

import json
import os
import subprocess

import pytest

import lss_harness as h

SB = "llmsafespace.dev/v1"


def sandbox(ns, name, labels=None, **spec):
    return {"apiVersion": SB, "kind": "Sandbox",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": spec or {"runtime": "python:3.11"}}


# ---------------------------------------------------------------- Store

def test_store_apply_get_update_status_delete(store, namespace):
    assert store.apply(sandbox(namespace, "a", timeout=60)) == ["sandbox/a created"]
    a = store.get("sandbox", "a", namespace)
    assert a["metadata"]["generation"] == 1
    assert a["spec"] == {"timeout": 60}
    rv = a["metadata"]["resourceVersion"]

    assert store.apply(sandbox(namespace, "a", timeout=60)) == ["sandbox/a unchanged"]
    assert store.apply(sandbox(namespace, "a", timeout=61)) == ["sandbox/a configured"]
    a2 = store.get("sb", "a", namespace)
    assert a2["metadata"]["generation"] == 2
    assert a2["metadata"]["resourceVersion"] != rv

    store.set_status("sandbox", "a", namespace, {"phase": "Running"})
    assert store.get("sandbox", "a", namespace)["status"] == {"phase": "Running"}
    store.wait("sandbox", "a", namespace, ".status.phase", "Running", timeout=5)
    with pytest.raises(h.LssError) as e:
        store.wait("sandbox", "a", namespace, ".status.phase", "Failed", timeout=1)
    assert e.value.code == 1 and '"Running"' in e.value.stderr

    assert store.delete("sandbox", "a", namespace) is True
    assert store.get("sandbox", "a", namespace) is None
    assert store.delete("sandbox", "a", namespace, missing_ok=True) is False
    with pytest.raises(h.LssError) as e:
        store.delete("sandbox", "a", namespace)
    assert e.value.code == 1
    store.wait("sandbox", "a", namespace, delete=True, timeout=5)


def test_store_lists_and_selectors(store, namespace):
    store.apply([sandbox(namespace, "w1", {"tier": "web"}),
                 sandbox(namespace, "w2", {"tier": "web"}),
                 sandbox(namespace, "d1", {"tier": "db"})])
    names = lambda items: [i["metadata"]["name"] for i in items]  # noqa: E731
    assert names(store.items("sb", namespace)) == ["d1", "w1", "w2"]
    assert names(store.items("sb", namespace, selector="tier=web")) == ["w1", "w2"]
    assert names(store.items("sb", namespace, selector="tier!=web")) == ["d1"]
    listing = store.list("sb", namespace)
    assert listing["kind"] == "List" and listing["metadata"]["resourceVersion"]
    everywhere = store.items("sb", all_namespaces=True)
    assert {"w1", "w2", "d1"} <= set(names(everywhere))


def test_store_yaml_text_and_examples(store):
    """Every example object of crds/examples applies as it is (YAML text)."""
    for path in sorted((h.ROOT / "crds" / "examples").glob("*.yaml")):
        out = store.apply(path.read_text())
        assert out and all(line.split()[-1] in ("created", "unchanged") for line in out), out
    assert store.get("rte", "python-3.11") is not None
    # applying them again changes nothing
    for path in sorted((h.ROOT / "crds" / "examples").glob("*.yaml")):
        assert all(line.endswith(" unchanged") for line in store.apply(path.read_text()))


def test_store_watch(store, namespace):
    rv = store.list("sb", namespace)["metadata"]["resourceVersion"]
    store.apply(sandbox(namespace, "w"))
    store.set_status("sb", "w", namespace, {"phase": "Creating"})
    store.delete("sb", "w", namespace)
    events = store.watch("sb", namespace, from_rv=rv, count=3, timeout=10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["status"] == {"phase": "Creating"}
    with pytest.raises(h.LssError):
        store.watch("sb", namespace, count=1, timeout=1)


def test_store_errors(store, namespace):
    bad = sandbox(namespace, "x")
    bad["metadata"]["labels"] = {"tier": "not valid!"}
    with pytest.raises(h.LssError) as e:
        store.apply(bad)
    assert e.value.code == 2 and "labels" in e.value.stderr
    with pytest.raises(h.LssError) as e:
        store.apply("kind: Sandbox\nmetadata: {name: [\n")
    assert e.value.code == 2 and "YAML line" in e.value.stderr
    with pytest.raises(h.LssError) as e:
        store.get("gadget", "x")
    assert e.value.code == 2


# ---------------------------------------------------------------- Config

def test_config_environment_is_accepted(config, store, namespace):
    """Every LSS_* variable the harness sets is a key the configuration knows (an unknown
    one is an error in every program), and store.dsn reaches `lss obj` from it."""
    env = config.env("watcher")
    assert env["LSS_TEST_PORT_FILE"].endswith("/ports/watcher.port")
    for key, value in config.settings().items():
        if value.startswith("ipc://"):
            assert len(value) - len("ipc://") <= h.UNIX_PATH_MAX
    assert len(str(config.state_dir)) <= h.STATE_DIR_MAX
    store.apply(sandbox(namespace, "cfg"))
    r = subprocess.run([str(h.LSS), "obj", "get", "sb", "-n", namespace, "-o", "name"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sandbox/cfg\n"
    # the same settings as a --config file
    cfg_file = config.write_yaml(config.base / "lss.yaml")
    r = subprocess.run([str(h.LSS), "--config", str(cfg_file), "obj", "get", "sb", "-n",
                        namespace, "-o", "name"],
                       env=h.clean_environ(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sandbox/cfg\n"
    # and a key the configuration does not know is refused (so the check above means it)
    env["LSS_NO_SUCH_KEY"] = "1"
    r = subprocess.run([str(h.LSS), "obj", "get", "sb"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "LSS_NO_SUCH_KEY" in r.stderr


def test_parse_metrics():
    text = ('# HELP lss_x_total things\n# TYPE lss_x_total counter\n'
            'lss_x_total 3\nlss_y{route="/readyz",code="200"} 1.5\n\n')
    m = h.parse_metrics(text)
    assert m == {"lss_x_total": 3.0, 'lss_y{route="/readyz",code="200"}': 1.5}
    assert h.metric(m, "lss_y", code=200, route="/readyz") == 1.5
    assert h.metric(m, "lss_y", code=500) is None
    with pytest.raises(h.HarnessError):
        h.parse_metrics("not a metric line at all {")


# ---------------------------------------------------------------- Service

@pytest.mark.parametrize("name", ["watcher", "reconciler", "warmpool", "executor", "node"])
def test_service_lifecycle(services, name):
    """Start → ready → metrics → SIGTERM exits 0 → restart → kill -9 → start again."""
    svc = services.start(name)
    assert svc.get("/healthz")[0] == 200
    samples = h.metrics(svc)
    assert samples, "empty /metrics"
    first_port = svc.port
    assert svc.stop() == 0, svc.log_tail()
    assert not svc.running()
    svc.start()
    assert svc.port and svc.get("/readyz")[0] == 200
    assert svc.kill() == -9
    svc.start()
    assert svc.get("/readyz")[0] == 200
    assert first_port  # admin ports are ephemeral (127.0.0.1:0), reported by the port file
    assert "starting lss-" + name in svc.log_text()
