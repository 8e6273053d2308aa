"""Invariants of the Kubernetes manifests (k8s/), the Secret generator and the Dockerfiles.

Every kustomization is rendered with kustomize_lite (this directory), which implements
exactly the kustomize features k8s/ uses; where kubectl exists its `kubectl kustomize`
output must equal kustomize_lite's (same objects, same fields), so the invariants checked
on the fallback hold for what `kubectl apply -k` applies. Checks: every object parses
and has apiVersion, kind, metadata.name (and a namespace when namespaced); every
Deployment and StatefulSet container has probes (Deployments: /healthz and /readyz on
the admin port of the service's config), requests and limits, and a non-root,
read-only, no-escalation, drop-ALL securityContext; RBAC has no wildcard and grants each
ServiceAccount exactly the rights the C code's store calls need; every ServiceAccount,
ConfigMap (and key), Secret (and key), Role, Service target and PDB selector referenced
exists; bus endpoints in the config point at Services with those ports; the CRD copies
equal crds/; both overlays render; gen-secrets writes exactly the template's Secrets with
fresh, consistent values (and a CURVE pair libzmq agrees with); one Dockerfile per image.
"""
import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize_lite as kl  # noqa: E402

ROOT = os.environ.get("LSS_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "k8s")
KUSTOMIZATIONS = ["", "base", "datastores", "overlays/dev", "overlays/prod"]
INSTALLS = ["", "overlays/dev", "overlays/prod"]  # what an operator applies
CP, SB = "llmsafespace", "llmsafespace-sandboxes"
SERVICES = ["api", "watcher", "reconciler", "warmpool", "executor"]
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole",
                  "ClusterRoleBinding", "RuntimeEnvironment"}
# LSS_TEST_NO_KUBECTL=1 runs as on a machine without kubectl (the fallback alone)
KUBECTL = None if os.environ.get("LSS_TEST_NO_KUBECTL") else shutil.which("kubectl")

_cache = {}


def render(rel):
    if rel not in _cache:
        _cache[rel] = kl.render(os.path.join(K8S, rel) if rel else K8S)
    return _cache[rel]


def kind(objs, k):
    return [o for o in objs if o["kind"] == k]


def workloads(objs):
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]


def by_name(objs, k, ns, name):
    for o in objs:
        m = o["metadata"]
        if o["kind"] == k and m["name"] == name and m.get("namespace", "") == ns:
            return o
    return None


def gen_secrets(*args):
    out = subprocess.run([os.path.join(K8S, "scripts", "gen-secrets"), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def config_of(objs):
    cm = by_name(objs, "ConfigMap", CP, "lss-config")
    assert cm, "ConfigMap lss-config missing"
    return cm, yaml.safe_load(cm["data"]["config.yaml"])


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("rel", KUSTOMIZATIONS)
def test_renders_and_every_object_parses(rel):
    objs = render(rel)
    assert objs, "nothing rendered"
    ids = set()
    for o in objs:
        assert isinstance(o, dict), o
        assert isinstance(o.get("apiVersion"), str) and o["apiVersion"], o
        assert isinstance(o.get("kind"), str) and o["kind"], o
        meta = o.get("metadata") or {}
        assert isinstance(meta.get("name"), str) and meta["name"], o
        ns = meta.get("namespace")
        if o["kind"] in CLUSTER_SCOPED:
            assert ns is None, "%s/%s is cluster-scoped" % (o["kind"], meta["name"])
        else:
            assert ns in (CP, SB), "%s/%s: namespace %r" % (o["kind"], meta["name"], ns)
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "llmsafespace"
        assert kl.obj_id(o) not in ids, "duplicate %s" % (kl.obj_id(o),)
        ids.add(kl.obj_id(o))


@pytest.mark.skipif(not KUBECTL, reason="kubectl not installed: the fallback renders alone")
@pytest.mark.parametrize("rel", KUSTOMIZATIONS)
def test_fallback_equals_kubectl_kustomize(rel):
    out = subprocess.run([KUBECTL, "kustomize", os.path.join(K8S, rel)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    theirs = {kl.obj_id(o): o for o in yaml.safe_load_all(out.stdout) if o}
    ours = {kl.obj_id(o): o for o in render(rel)}
    assert sorted(ours) == sorted(theirs)
    for key, obj in ours.items():
        assert obj == theirs[key], "object %s differs from kubectl's" % (key,)


def test_top_level_is_the_dev_overlay():
    assert render("") == render("overlays/dev")


def test_fallback_refuses_what_it_does_not_implement(tmp_path):
    for extra in ("namespace: x", "images: [{name: a, newTag: b}]", "commonLabels: {a: b}",
                  "configMapGenerator: [{name: a, literals: [a=b]}]"):
        (tmp_path / "kustomization.yaml").write_text("resources: []\n" + extra + "\n")
        with pytest.raises(kl.Unsupported):
            kl.render(str(tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        "labels: [{pairs: {a: b}, includeSelectors: true}]\n")
    with pytest.raises(kl.Unsupported):
        kl.render(str(tmp_path))


def test_strategic_merge_semantics():
    base = {"spec": {"replicas": 2, "keep": 1, "drop": 1, "args": ["a", "b"],
                     "containers": [{"name": "c1", "image": "i1",
                                     "env": [{"name": "A", "value": "1"}]},
                                    {"name": "c2", "image": "i2"}]}}
    patch = {"spec": {"replicas": 3, "drop": None, "args": ["z"],
                      "containers": [{"name": "c2", "image": "new",
                                      "env": [{"name": "B", "value": "2"}]},
                                     {"name": "c3", "image": "i3"}]}}
    assert kl.strategic_merge(base, patch) == {"spec": {
        "replicas": 3, "keep": 1, "args": ["z"],
        "containers": [{"name": "c1", "image": "i1", "env": [{"name": "A", "value": "1"}]},
                       {"name": "c2", "image": "new", "env": [{"name": "B", "value": "2"}]},
                       {"name": "c3", "image": "i3"}]}}
    assert base["spec"]["replicas"] == 2, "the base must be left unchanged"
    with pytest.raises(kl.Unsupported):
        kl._check_directives({"spec": {"$patch": "delete"}}, "x")


# ---------------------------------------------------------------- workloads


@pytest.mark.parametrize("rel", INSTALLS)
def test_every_workload_is_probed_limited_and_locked_down(rel):
    objs = render(rel)
    _, cfg = config_of(objs)
    assert len(kind(objs, "Deployment")) == len(SERVICES)
    assert len(kind(objs, "StatefulSet")) == 2
    for w in workloads(objs):
        name = w["metadata"]["name"]
        pod = w["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True, name
        assert pod["containers"], name
        for c in pod["containers"] + pod.get("initContainers", []):
            where = "%s/%s" % (name, c["name"])
            for probe in ("livenessProbe", "readinessProbe"):
                assert isinstance(c.get(probe), dict) and c[probe], where + ": " + probe
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                assert res.get(part, {}).get("cpu") and res[part].get("memory"), \
                    "%s: resources.%s" % (where, part)
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("privileged") is not True, where
        if w["kind"] == "Deployment":
            svc = w["metadata"]["labels"]["app.kubernetes.io/component"]
            assert name == "lss-" + svc and svc in SERVICES
            c = pod["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["admin"] == port_of(cfg[svc]["admin_listen"]), name
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
            ru = w["spec"]["strategy"]
            assert ru["type"] == "RollingUpdate" and ru["rollingUpdate"]["maxUnavailable"] == 0
            assert pod["serviceAccountName"] == name


def test_overlay_replicas():
    for w in kind(render("overlays/dev"), "Deployment"):
        assert w["spec"]["replicas"] == 1, w["metadata"]["name"]
        assert w["metadata"]["labels"]["llmsafespace.dev/environment"] == "dev"
    for w in kind(render("overlays/prod"), "Deployment"):
        assert w["spec"]["replicas"] >= 2, w["metadata"]["name"]
        assert w["metadata"]["labels"]["llmsafespace.dev/environment"] == "prod"
    # a PodDisruptionBudget for every scaled service, never blocking a drain of one replica
    objs = render("overlays/prod")
    pdbs = kind(objs, "PodDisruptionBudget")
    assert len(pdbs) == len(SERVICES)
    for p in pdbs:
        assert p["spec"].get("maxUnavailable", 0) >= 1
        sel = p["spec"]["selector"]["matchLabels"]
        assert any(sel.items() <= w["spec"]["template"]["metadata"]["labels"].items()
                   for w in kind(objs, "Deployment")), p["metadata"]["name"]


# ---------------------------------------------------------------- references


def _pod_refs(pod):
    """(kind, name, key or None) of every ConfigMap and Secret a pod spec uses."""
    refs = []
    for c in pod["containers"] + pod.get("initContainers", []):
        for e in c.get("env", []):
            vf = e.get("valueFrom", {})
            if "configMapKeyRef" in vf:
                refs.append(("ConfigMap", vf["configMapKeyRef"]["name"],
                             vf["configMapKeyRef"]["key"]))
            if "secretKeyRef" in vf:
                refs.append(("Secret", vf["secretKeyRef"]["name"], vf["secretKeyRef"]["key"]))
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef:
                refs.append(("ConfigMap", ef["configMapRef"]["name"], None))
            if "secretRef" in ef:
                refs.append(("Secret", ef["secretRef"]["name"], None))
    for v in pod.get("volumes", []):
        if "configMap" in v:
            refs.append(("ConfigMap", v["configMap"]["name"], None))
        if "secret" in v:
            refs.append(("Secret", v["secret"]["secretName"], None))
    return refs


@pytest.mark.parametrize("rel", INSTALLS)
def test_every_reference_exists(rel):
    objs = render(rel)
    secrets = {s["metadata"]["name"]: s for s in gen_secrets()}
    for w in workloads(objs):
        ns = w["metadata"]["namespace"]
        pod = w["spec"]["template"]["spec"]
        sa = pod.get("serviceAccountName")
        assert sa and by_name(objs, "ServiceAccount", ns, sa), "%s: SA %s" % (
            w["metadata"]["name"], sa)
        assert w["spec"]["selector"]["matchLabels"].items() <= \
            w["spec"]["template"]["metadata"]["labels"].items()
        for k, name, key in _pod_refs(pod):
            if k == "ConfigMap":
                cm = by_name(objs, "ConfigMap", ns, name)
                assert cm, "%s: ConfigMap %s" % (w["metadata"]["name"], name)
                assert key is None or key in cm["data"], "%s: key %s" % (name, key)
            else:
                assert name in secrets and ns == CP, "%s: Secret %s" % (w["metadata"]["name"],
                                                                        name)
                assert key is None or key in secrets[name]["stringData"], (name, key)
    for b in kind(objs, "RoleBinding") + kind(objs, "ClusterRoleBinding"):
        ns = b["metadata"].get("namespace", "")
        ref = b["roleRef"]
        assert by_name(objs, ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"]), \
            "%s: roleRef %s" % (b["metadata"]["name"], ref)
        for s in b["subjects"]:
            assert s["kind"] == "ServiceAccount"
            assert by_name(objs, "ServiceAccount", s["namespace"], s["name"]), s
    for s in kind(objs, "Service"):
        ns = s["metadata"]["namespace"]
        pods = [w for w in workloads(objs) if w["metadata"]["namespace"] == ns and
                s["spec"]["selector"].items() <=
                w["spec"]["template"]["metadata"]["labels"].items()]
        assert pods, "Service %s selects nothing" % s["metadata"]["name"]
        names = {p["name"] for w in pods for c in w["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in names, "Service %s: port %s" % (s["metadata"]["name"], p)


def test_config_keys_exist_and_endpoints_resolve():
    objs = render("")
    with open(os.path.join(ROOT, "common", "lss_settings.c"), encoding="utf-8") as f:
        text = f.read()
    macros = dict(re.findall(r"#define (S_\w+)\s+(\d+)", text))
    table = re.findall(r'\{"([a-z0-9_.]+)",\s*LSS_CFG_(\w+),\s*"[^"]*",\s*(\w+),\s*(\w+)',
                       text)
    known = {k: (t, int(macros.get(lo, lo)), int(macros.get(hi, hi))) for k, t, lo, hi in table}
    assert len(known) > 50
    cm, cfg = config_of(objs)
    flat = flatten(cfg)
    assert set(flat) <= set(known), "unknown config keys: %s" % (set(flat) - set(known))
    for key, value in flat.items():
        typ, lo, hi = known[key]
        if typ == "STR":
            assert isinstance(value, str) and lo <= len(value.encode()) <= hi, key
    for rel in INSTALLS:
        assert config_of(render(rel))[0]["data"]["log-level"] in ("debug", "info", "warn",
                                                                  "error")
    assert flat["store.backend"] == "kubernetes"
    assert flat["api.namespace"] == SB and flat["k8s.namespace"] == CP
    for w in kind(objs, "Deployment"):
        svc = w["metadata"]["labels"]["app.kubernetes.io/component"]
        env = {e["name"] for e in w["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "LSS_CONFIG" in env
        for e in env - {"LSS_CONFIG"}:  # every other LSS_* variable names a known key
            key = e[4:].lower()
            assert any(k.replace(".", "_").replace("-", "_") == key for k in known), e
        ports = {p["containerPort"]
                 for p in w["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for key, value in flat.items():
            if not key.startswith(svc + ".") or not isinstance(value, str):
                continue
            m = re.fullmatch(r"(dns\+)?(?:tcp://)?([^:/]+):(\d+)", value)
            if not m or not (key.endswith("_endpoint") or key.endswith("listen")):
                continue
            dns, host, port = m.group(1), m.group(2), int(m.group(3))
            if dns:  # dns+tcp://<svc>.<ns>.svc.cluster.local: every replica (lss_discovery)
                parts = host.split(".")
                assert parts[1:] == [CP, "svc", "cluster", "local"], (key, value)
                host = parts[0]
            if host in ("0.0.0.0", "*"):  # binds: the Pod must declare the port
                assert port in ports, "%s: %s not a containerPort of %s" % (key, port, svc)
                continue
            target = by_name(objs, "Service", CP, host)
            assert target, "%s: no Service %s" % (key, host)
            assert port in [p["port"] for p in target["spec"]["ports"]], (key, value)
            assert target["spec"].get("clusterIP") == "None", "%s: bus Services are headless" % key
    # components with replicas are reached through discovery, not one resolved address
    for key in ("api.executor_endpoint", "api.warmpool_endpoint", "api.watcher_endpoint",
                "reconciler.queue_endpoint", "warmpool.queue_endpoint",
                "warmpool.executor_endpoint"):
        assert flat[key].startswith("dns+tcp://"), key


LSS = os.path.join(os.environ.get("LSS_BUILD_DIR") or os.path.join(ROOT, "build"), "bin", "lss")


@pytest.mark.skipif(not os.access(LSS, os.X_OK), reason="build/bin/lss not built")
@pytest.mark.parametrize("rel", INSTALLS)
def test_the_real_config_loader_accepts_each_services_config(rel, tmp_path):
    """config.yaml plus each Deployment's environment (ConfigMap and Secret values
    filled in as the kubelet would), loaded by the same code as the services (lss
    loads the configuration before running a command; an error is exit 2)."""
    objs = render(rel)
    cm, _ = config_of(objs)
    conf = tmp_path / "config.yaml"
    conf.write_text(cm["data"]["config.yaml"])
    secrets = {s["metadata"]["name"]: s["stringData"] for s in gen_secrets()}
    for w in kind(objs, "Deployment"):
        env = {"PATH": "/usr/bin:/bin"}
        for e in w["spec"]["template"]["spec"]["containers"][0]["env"]:
            vf = e.get("valueFrom", {})
            if "configMapKeyRef" in vf:
                env[e["name"]] = cm["data"][vf["configMapKeyRef"]["key"]]
            elif "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                env[e["name"]] = secrets[ref["name"]][ref["key"]]
            else:
                env[e["name"]] = e["value"]
        env["LSS_CONFIG"] = str(conf)
        out = subprocess.run([LSS, "docs", "--help"], env=env, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0 and "configuration error" not in out.stderr, \
            "%s: %s" % (w["metadata"]["name"], out.stderr)
    conf.write_text(cm["data"]["config.yaml"] + "bogus:\n  key: 1\n")
    out = subprocess.run([LSS, "docs", "--help"], env={"PATH": "/usr/bin:/bin",
                                                       "LSS_CONFIG": str(conf)},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "configuration error" in out.stderr


# ---------------------------------------------------------------- RBAC

# What each ServiceAccount must be able to do, and nothing more: (group, resource, verb,
# scope, resourceNames) with scope a namespace, "*" (every namespace: the watcher lists
# and watches without one) or "cluster" (cluster-scoped kinds). Derived from the store
# calls in services/*/ (lss_store_get/list/create/update/update_status/delete/watch) and
# common/lss_leader_lease.c (Lease get, create, update), with the kinds' plurals from
# common/lss_store_valid.c.
G = "llmsafespace.dev"


def _need(group, resources, verbs, scope, names=()):
    return {(group, r, v, scope, tuple(names)) for r in resources for v in verbs}


REQUIRED = {
    "lss-api": (_need(G, ["sandboxes"], ["get", "list", "create", "delete"], SB) |
                _need(G, ["sandboxes"], ["list"], CP) |
                _need(G, ["warmpools"], ["get", "list", "create", "update", "delete"], SB) |
                _need(G, ["sandboxprofiles"], ["get", "list"], SB) |
                _need(G, ["runtimeenvironments"], ["get", "list"], "cluster")),
    "lss-watcher": (_need(G, ["sandboxes", "warmpools", "warmpods", "sandboxprofiles"],
                          ["list", "watch"], "*") |
                    _need("", ["pods"], ["list", "watch"], "*") |
                    _need(G, ["runtimeenvironments"], ["list", "watch"], "cluster") |
                    _need("coordination.k8s.io", ["leases"], ["create"], CP) |
                    _need("coordination.k8s.io", ["leases"], ["get", "update"], CP,
                          ["watcher"])),
    "lss-reconciler": (_need(G, ["sandboxes"], ["get", "update"], SB) |
                       _need(G, ["sandboxes/status"], ["update"], SB) |
                       _need(G, ["warmpods"], ["get", "delete"], SB) |
                       _need(G, ["sandboxprofiles"], ["get"], SB) |
                       _need("", ["pods"], ["get", "create", "update", "delete"], SB) |
                       _need("", ["secrets"], ["get", "create"], SB) |  # agents' CURVE keys
                       _need("networking.k8s.io", ["networkpolicies"], ["create"], SB) |
                       _need(G, ["runtimeenvironments"], ["get"], "cluster")),
    "lss-warmpool": (_need(G, ["warmpools"], ["get"], SB) |
                     _need(G, ["warmpools/status", "warmpods/status"], ["update"], SB) |
                     _need(G, ["warmpods"], ["list", "create", "delete"], SB) |
                     _need(G, ["sandboxes"], ["get"], SB) |
                     _need("", ["pods"], ["list", "create", "delete"], SB) |
                     _need("", ["secrets"], ["get", "create"], SB) |  # warm agents' keys
                     _need(G, ["runtimeenvironments"], ["get"], "cluster") |
                     _need("coordination.k8s.io", ["leases"], ["create"], CP) |
                     _need("coordination.k8s.io", ["leases"], ["get", "update"], CP,
                           ["warmpool-scaler"])),
    "lss-executor": _need(G, ["sandboxes"], ["get"], SB),
}


def _granted(objs):
    """ServiceAccount name -> set of (group, resource, verb, scope, resourceNames)."""
    crds = {c["spec"]["names"]["plural"]: c["spec"]["scope"]
            for c in kind(objs, "CustomResourceDefinition")}
    out = {}
    for b in kind(objs, "RoleBinding") + kind(objs, "ClusterRoleBinding"):
        ns = b["metadata"].get("namespace")
        ref = b["roleRef"]
        role = by_name(objs, ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"])
        for s in b["subjects"]:
            assert s["namespace"] == CP
            for rule in role["rules"]:
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        cluster = crds.get(r.split("/")[0]) == "Cluster"
                        scope = "cluster" if cluster else (ns or "*")
                        for v in rule["verbs"]:
                            out.setdefault(s["name"], set()).add(
                                (g, r, v, scope, tuple(rule.get("resourceNames", ()))))
    return out


@pytest.mark.parametrize("rel", INSTALLS)
def test_rbac_has_no_wildcard_and_is_exactly_what_the_code_needs(rel):
    objs = render(rel)
    for r in kind(objs, "Role") + kind(objs, "ClusterRole"):
        assert r.get("rules"), r["metadata"]["name"]
        assert "aggregationRule" not in r
        for rule in r["rules"]:
            assert "nonResourceURLs" not in rule, r["metadata"]["name"]
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                for item in rule.get(field, []):
                    assert "*" not in item, "%s: %s %s" % (r["metadata"]["name"], field, item)
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            if "secrets" in rule["resources"]:  # only the agents' key Secrets, made there
                assert r["metadata"]["namespace"] == SB and set(rule["verbs"]) <= {"get",
                                                                                    "create"}
    granted = _granted(objs)
    assert set(granted) == set(REQUIRED)
    for sa, need in REQUIRED.items():
        assert granted[sa] == need, "%s: missing %s, extra %s" % (
            sa, sorted(need - granted[sa]), sorted(granted[sa] - need))
    for sa in kind(objs, "ServiceAccount"):
        name = sa["metadata"]["name"]
        assert sa.get("automountServiceAccountToken") is (name in REQUIRED), name


def test_lease_names_match_the_code():
    with open(os.path.join(ROOT, "services", "watcher", "main.c"), encoding="utf-8") as f:
        assert re.search(r'lss_leader_\w+ \([^;]*"watcher"', f.read())
    with open(os.path.join(ROOT, "services", "warmpool", "warmpool_worker.c"),
              encoding="utf-8") as f:
        assert '#define S_ELECTION   "warmpool-scaler"' in f.read()


# ---------------------------------------------------------------- CRDs, defaults


def test_crd_copies_equal_crds():
    src = sorted(f for f in os.listdir(os.path.join(ROOT, "crds")) if f.endswith(".yaml"))
    dst = sorted(f for f in os.listdir(os.path.join(K8S, "base", "crds"))
                 if f.endswith(".yaml") and f != "kustomization.yaml")
    assert src == dst and len(src) == 5
    for f in src:
        with open(os.path.join(ROOT, "crds", f), "rb") as a, \
                open(os.path.join(K8S, "base", "crds", f), "rb") as b:
            assert a.read() == b.read(), "k8s/base/crds/%s differs: run k8s/scripts/sync-crds" % f
    rendered = {c["metadata"]["name"]: c for c in kind(render("base"), "CustomResourceDefinition")}
    for f in src:
        (crd,) = kl.load_docs(os.path.join(ROOT, "crds", f))
        assert rendered[crd["metadata"]["name"]] == crd


def test_default_runtimes_and_pool():
    objs = render("")
    rts = {r["metadata"]["name"]: r for r in kind(objs, "RuntimeEnvironment")}
    assert set(rts) == {"python-3.11", "nodejs-20"}
    pools = kind(objs, "WarmPool")
    assert len(pools) == 1 and pools[0]["metadata"]["namespace"] == SB
    lang, version = pools[0]["spec"]["runtime"].split(":")
    assert any(r["spec"]["language"] == lang and r["spec"]["version"] == version
               for r in rts.values())
    assert pools[0]["spec"]["minSize"] <= pools[0]["spec"]["maxSize"]
    pols = [p for p in kind(objs, "NetworkPolicy") if p["metadata"]["namespace"] == SB]
    deny = [p for p in pols if p["spec"]["podSelector"] == {} and
            set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and
            not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "the sandboxes namespace needs a default-deny NetworkPolicy"


# ---------------------------------------------------------------- secrets


def test_gen_secrets_matches_the_template_with_fresh_values():
    template = {s["metadata"]["name"]: s for s in
                kl.load_docs(os.path.join(K8S, "secrets", "template.yaml"))}
    a = {s["metadata"]["name"]: s for s in gen_secrets()}
    b = {s["metadata"]["name"]: s for s in gen_secrets()}
    assert set(a) == set(template) == {"lss-api", "lss-postgres", "lss-redis",
                                       "lss-executor-curve"}
    for name, s in a.items():
        assert s["kind"] == "Secret" and s["metadata"]["namespace"] == CP
        assert set(s["stringData"]) == set(template[name]["stringData"]), name
        for key, value in s["stringData"].items():
            assert "CHANGE-ME" not in value
            assert value != b[name]["stringData"][key], "%s/%s not fresh" % (name, key)
    api = a["lss-api"]["stringData"]
    assert re.fullmatch(r"[0-9a-f]{96}", api["jwt-secret"])
    pg = a["lss-postgres"]["stringData"]["password"]
    redis = a["lss-redis"]["stringData"]["password"]
    assert re.fullmatch(r"[0-9a-f]{48}", pg) and re.fullmatch(r"[0-9a-f]{48}", redis)
    assert api["db-dsn"] == "host=lss-postgres port=5432 dbname=lss user=lss password=" + pg
    assert api["redis-url"] == "redis://:%s@lss-redis:6379/0" % redis
    ext = {s["metadata"]["name"]: s for s in
           gen_secrets("--db-dsn", "host=db.example password='x y'", "--redis-url",
                       "redis://:p\"q@r:6379/1")}
    assert ext["lss-api"]["stringData"]["db-dsn"] == "host=db.example password='x y'"
    assert ext["lss-api"]["stringData"]["redis-url"] == "redis://:p\"q@r:6379/1"
    bad = subprocess.run([os.path.join(K8S, "scripts", "gen-secrets"), "--bogus"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def test_gen_secrets_curve_pair_is_a_pair():
    curve = {s["metadata"]["name"]: s for s in gen_secrets()}["lss-executor-curve"]["stringData"]
    z85 = r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}"
    assert re.fullmatch(z85, curve["secret-key"]) and re.fullmatch(z85, curve["public-key"])
    lib = ctypes.util.find_library("zmq")
    if not lib:
        pytest.skip("libzmq not found: the pair's consistency is not checked")
    zmq = ctypes.CDLL(lib)
    if not zmq.zmq_has(b"curve"):
        pytest.skip("libzmq without CURVE")
    out = ctypes.create_string_buffer(41)
    assert zmq.zmq_curve_public(out, curve["secret-key"].encode()) == 0
    assert out.value.decode() == curve["public-key"]


# ---------------------------------------------------------------- images


def _dockerfile(name):
    path = os.path.join(K8S, "images", "Dockerfile." + name)
    assert os.path.isfile(path), path
    with open(path, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    return lines, open(path, encoding="utf-8").read()


def test_dockerfiles():
    names = sorted(f[len("Dockerfile."):] for f in os.listdir(os.path.join(K8S, "images")))
    assert names == sorted(SERVICES + ["runtime-base", "runtime-python", "runtime-nodejs"])
    with open(os.path.join(ROOT, "services", "reconciler", "reconciler_worker.c"),
              encoding="utf-8") as f:
        agent = re.search(r'\.agent_command = "([^"]+)"', f.read()).group(1)
    for n in names:
        lines, text = _dockerfile(n)
        froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
        users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root"), n + ": final USER"
        entry = [ln for ln in lines if ln.upper().startswith("ENTRYPOINT ")]
        assert entry, n
        if n in SERVICES:
            assert len(froms) == 2 and " AS build" in froms[0], n + ": multi-stage"
            assert "make -s -j2 build/bin/lss-" + n in text
            assert entry[-1] == 'ENTRYPOINT ["/usr/local/bin/lss-%s"]' % n
        else:
            assert agent in entry[-1] and "tcp://0.0.0.0:7430" in entry[-1], n
    for w in kind(render(""), "Deployment"):
        image = w["spec"]["template"]["spec"]["containers"][0]["image"]
        svc = w["metadata"]["labels"]["app.kubernetes.io/component"]
        assert image.startswith("llmsafespace/lss-%s:" % svc)
        assert "-t " + image in _dockerfile(svc)[1]
    for r in kind(render(""), "RuntimeEnvironment"):
        _, text = _dockerfile("runtime-" + r["spec"]["language"])
        assert "-t " + r["spec"]["image"] in text
        assert r["spec"]["interpreter"] in text or r["spec"]["language"] == "python"
