"""test_crds: the CustomResourceDefinitions in crds/ and the example objects in crds/examples/.

Design note: no Kubernetes API server is needed. The module parses every YAML file, checks
each CRD's shape (group, names, scope, version, status subresource, printer columns) and
that its openAPIV3Schema is structural, then validates every example object against its
kind's schema with a small validator written here. The validator implements the OpenAPI
v3 subset that apiextensions.k8s.io/v1 accepts (type, format, required, enum, pattern,
minimum/maximum, lengths, items, properties, additionalProperties, nullable and the
x-kubernetes-* escapes) and, like `kubectl apply --validate=strict`, treats a field the
schema does not declare as an error. Kubernetes patterns are ECMA-262 regular expressions,
unanchored unless they say ^/$, hence re.search. A test checks that the CRDs use no schema
keyword the validator does not implement, so a pass here means what it says.

Run: cd /work/main && /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/crds
"""

import copy
import datetime
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(os.environ.get("LSS_ROOT") or Path(__file__).resolve().parents[2])
CRD_DIR = ROOT / "crds"
EXAMPLE_DIR = CRD_DIR / "examples"

GROUP = "llmsafespace.dev"
VERSION = "v1"
EXAMPLE_NAMESPACE = "llmsafespace"
PART_OF = {"app.kubernetes.io/part-of": "llmsafespace"}

# kind -> what its CustomResourceDefinition must declare
KINDS = {
    "Sandbox": {
        "file": "sandboxes.yaml", "plural": "sandboxes", "singular": "sandbox",
        "shortNames": ["sb"], "scope": "Namespaced",
    },
    "WarmPool": {
        "file": "warmpools.yaml", "plural": "warmpools", "singular": "warmpool",
        "shortNames": ["wp"], "scope": "Namespaced",
    },
    "WarmPod": {
        "file": "warmpods.yaml", "plural": "warmpods", "singular": "warmpod",
        "shortNames": ["wpod"], "scope": "Namespaced",
    },
    "RuntimeEnvironment": {
        "file": "runtimeenvironments.yaml", "plural": "runtimeenvironments",
        "singular": "runtimeenvironment", "shortNames": ["rte"], "scope": "Cluster",
    },
    "SandboxProfile": {
        "file": "sandboxprofiles.yaml", "plural": "sandboxprofiles",
        "singular": "sandboxprofile", "shortNames": ["sbp"], "scope": "Namespaced",
    },
}

# example file -> kind (and, for the objects local mode seeds, the name it must carry)
EXAMPLES = {
    "sandbox.yaml": ("Sandbox", None),
    "warmpool.yaml": ("WarmPool", None),
    "warmpod.yaml": ("WarmPod", None),
    "runtimeenvironment.yaml": ("RuntimeEnvironment", None),
    "sandboxprofile.yaml": ("SandboxProfile", None),
    "runtime-python.yaml": ("RuntimeEnvironment", "python-3.11"),
    "runtime-bash.yaml": ("RuntimeEnvironment", None),
    "runtime-node.yaml": ("RuntimeEnvironment", None),
    "warmpool-python.yaml": ("WarmPool", "python-default"),
}

CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"

# Kubernetes label syntax (k8s.io/apimachinery/pkg/util/validation)
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RFC3339_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


# --------------------------------------------------------------------------------------
# Loading

def load_docs(path):
    """All non-empty YAML documents of a file."""
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def yaml_files(directory):
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix in (".yaml", ".yml"))


def load_crds():
    """kind -> CRD document, from crds/*.yaml."""
    crds = {}
    for path in yaml_files(CRD_DIR):
        for doc in load_docs(path):
            crds[doc["spec"]["names"]["kind"]] = doc
    return crds


CRDS = load_crds()


def schema_of(kind):
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def load_example(name):
    docs = load_docs(EXAMPLE_DIR / name)
    assert len(docs) == 1, f"{name}: expected one object, found {len(docs)}"
    return docs[0]


# --------------------------------------------------------------------------------------
# The validator

# Keywords the validator below implements (or that carry no constraint).
VALIDATED_KEYWORDS = {
    "type", "format", "required", "enum", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems",
    "maxItems", "minProperties", "maxProperties", "items", "properties",
    "additionalProperties", "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}
ANNOTATION_KEYWORDS = {"description", "title", "example", "default"}

INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
}


def validate(schema, value, path="$"):
    """Errors (a list of "path: problem" strings) of value against an OpenAPI v3 schema
    node as Kubernetes applies it to a custom resource. Empty list means valid."""
    errors = []

    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null is not allowed"]
    if isinstance(value, (datetime.date, datetime.datetime, bytes)):
        # YAML typed this scalar (an unquoted timestamp, !!binary); JSON has no such type.
        return [f"{path}: {type(value).__name__} is not a JSON value; quote it"]

    if schema.get("x-kubernetes-int-or-string"):
        if not (_is_int(value) or isinstance(value, str)):
            return [f"{path}: type: expected integer or string, got {type(value).__name__}"]
    elif "type" in schema:
        t = schema["type"]
        if not TYPE_CHECKS[t](value):
            return [f"{path}: type: expected {t}, got {type(value).__name__}"]

    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: enum: {value!r} is not one of {schema['enum']}")

    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: pattern: {value!r} does not match {schema['pattern']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: minLength: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: maxLength: longer than {schema['maxLength']}")
        if schema.get("format") == "date-time" and not RFC3339_RE.search(value):
            errors.append(f"{path}: format: {value!r} is not an RFC 3339 date-time")

    if _is_number(value):
        if "minimum" in schema:
            lo = schema["minimum"]
            if value < lo or (schema.get("exclusiveMinimum") and value == lo):
                errors.append(f"{path}: minimum: {value} is less than {lo}")
        if "maximum" in schema:
            hi = schema["maximum"]
            if value > hi or (schema.get("exclusiveMaximum") and value == hi):
                errors.append(f"{path}: maximum: {value} is greater than {hi}")
        if _is_int(value) and schema.get("format") in INT_RANGES:
            lo, hi = INT_RANGES[schema["format"]]
            if not lo <= value <= hi:
                errors.append(f"{path}: format: {value} out of {schema['format']} range")

    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: minItems: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: maxItems: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(schema["items"], item, f"{path}[{i}]")

    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: required: missing {key!r}")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            errors.append(f"{path}: minProperties: fewer than {schema['minProperties']}")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(f"{path}: maxProperties: more than {schema['maxProperties']}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        free = schema.get("x-kubernetes-preserve-unknown-fields")
        for key, item in value.items():
            sub = f"{path}.{key}"
            if not isinstance(key, str):
                errors.append(f"{sub}: key is not a string")
            elif key in props:
                errors += validate(props[key], item, sub)
            elif isinstance(extra, dict):
                errors += validate(extra, item, sub)
            elif extra is True or free:
                pass
            else:
                errors.append(f"{sub}: unknown field")
    return errors


def metadata_errors(kind, meta):
    """What the API server would say about an object's metadata (name, namespace by
    scope, label syntax)."""
    errors = []
    if not isinstance(meta, dict):
        return ["metadata: missing"]
    name = meta.get("name", "")
    if not (isinstance(name, str) and len(name) <= 253 and DNS1123_SUBDOMAIN_RE.search(name)):
        errors.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    namespaced = KINDS[kind]["scope"] == "Namespaced"
    if namespaced and not DNS1123_LABEL_RE.search(str(meta.get("namespace", ""))):
        errors.append("metadata.namespace: missing or invalid for a namespaced kind")
    if not namespaced and "namespace" in meta:
        errors.append("metadata.namespace: set on a cluster-scoped kind")
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return errors + ["metadata.labels: not a map"]
    for key, value in labels.items():
        errors += [f"metadata.labels[{key!r}]: {e}" for e in label_errors(key, value)]
    return errors


def label_errors(key, value):
    errors = []
    prefix, _, name = key.rpartition("/")
    if prefix and not (len(prefix) <= 253 and DNS1123_SUBDOMAIN_RE.search(prefix)):
        errors.append(f"key prefix {prefix!r} is not a DNS-1123 subdomain")
    if not (len(name) <= 63 and LABEL_NAME_RE.search(name)):
        errors.append(f"key name {name!r} is not a valid label name")
    if not isinstance(value, str):
        errors.append(f"value {value!r} is not a string")
    elif not (len(value) <= 63 and LABEL_VALUE_RE.search(value)):
        errors.append(f"value {value!r} is not a valid label value (sanitize it)")
    return errors


def sanitize_label_value(s):
    """The platform's rule for label values built from runtime names: every character a
    label value cannot hold becomes '-' ("python:3.11" -> "python-3.11")."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", s)[:63].strip("-_.")


def object_errors(obj):
    """Every error of a whole custom object: apiVersion/kind, metadata, schema."""
    kind = obj.get("kind")
    if kind not in KINDS:
        return [f"kind: unknown kind {kind!r}"]
    errors = []
    if obj.get("apiVersion") != f"{GROUP}/{VERSION}":
        errors.append(f"apiVersion: {obj.get('apiVersion')!r}")
    errors += metadata_errors(kind, obj.get("metadata"))
    # metadata is ObjectMeta, checked above; the schema declares it as a bare object.
    rest = {k: v for k, v in obj.items() if k != "metadata"}
    return errors + validate(schema_of(kind), rest)


# --------------------------------------------------------------------------------------
# Schema walking

def schema_nodes(node, path="$"):
    """(path, node) for every schema node under node, itself included."""
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


def schema_at(root, json_path):
    """The schema node a printer-column jsonPath such as .spec.poolRef.name names."""
    assert re.fullmatch(r"(\.[A-Za-z][A-Za-z0-9]*)+", json_path), json_path
    node = root
    for part in json_path.split(".")[1:]:
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


# --------------------------------------------------------------------------------------
# Files

ALL_FILES = yaml_files(CRD_DIR) + yaml_files(EXAMPLE_DIR)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_file_parses(path):
    docs = load_docs(path)
    assert docs, f"{path}: no YAML documents"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
        assert isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)


def test_crd_dir_holds_exactly_the_five_kinds():
    found = {}
    for path in yaml_files(CRD_DIR):
        docs = load_docs(path)
        assert len(docs) == 1, f"{path.name}: one CustomResourceDefinition per file"
        found[path.name] = docs[0]["spec"]["names"]["kind"]
    assert found == {spec["file"]: kind for kind, spec in KINDS.items()}


def test_examples_dir_holds_the_expected_objects():
    assert {p.name for p in yaml_files(EXAMPLE_DIR)} == set(EXAMPLES)
    assert {kind for kind, _ in EXAMPLES.values()} == set(KINDS)


# --------------------------------------------------------------------------------------
# CRD shape

@pytest.mark.parametrize("kind", KINDS)
def test_crd_header(kind):
    want = KINDS[kind]
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{want['plural']}.{GROUP}"
    assert PART_OF.items() <= crd["metadata"].get("labels", {}).items()
    spec = crd["spec"]
    assert spec["group"] == GROUP
    names = spec["names"]
    assert names["kind"] == kind
    assert names["plural"] == want["plural"]
    assert names["singular"] == want["singular"]
    assert names["shortNames"] == want["shortNames"]
    assert names.get("listKind", kind + "List") == kind + "List"
    assert spec["scope"] == want["scope"]


@pytest.mark.parametrize("kind", KINDS)
def test_crd_single_v1_version_with_status_subresource(kind):
    versions = CRDS[kind]["spec"]["versions"]
    assert len(versions) == 1
    v = versions[0]
    assert v["name"] == VERSION
    assert v["served"] is True and v["storage"] is True
    assert v.get("subresources") == {"status": {}}
    root = v["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    assert root["properties"]["spec"]["type"] == "object"
    assert root["properties"]["status"]["type"] == "object"
    assert "spec" in root.get("required", [])


PRINTER_TYPES = {"string": {"string"}, "integer": {"integer"}, "number": {"number", "integer"},
                 "boolean": {"boolean"}, "date": {"string"}}


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_into_the_schema(kind):
    version = CRDS[kind]["spec"]["versions"][0]
    columns = version.get("additionalPrinterColumns", [])
    assert columns, "no printer columns"
    assert len({c["name"] for c in columns}) == len(columns), "duplicate column names"
    for col in columns:
        assert set(col) <= {"name", "type", "jsonPath", "description", "priority", "format"}
        assert col["type"] in PRINTER_TYPES, col
        if col["jsonPath"] == ".metadata.creationTimestamp":
            assert col["type"] == "date"
            continue
        node = schema_at(version["schema"]["openAPIV3Schema"], col["jsonPath"])
        assert node is not None, f"{col['name']}: {col['jsonPath']} is not in the schema"
        assert node["type"] in PRINTER_TYPES[col["type"]], col
        if col["type"] == "date":
            assert node.get("format") == "date-time", col
    # the last default column is Age, as kubectl users expect
    default = [c for c in columns if not c.get("priority")]
    assert default[-1] == {"name": "Age", "type": "date",
                           "jsonPath": ".metadata.creationTimestamp"}


def _default_columns(kind):
    cols = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    return [(c["name"], c["jsonPath"]) for c in cols if not c.get("priority")]


def test_kubectl_get_sb_shows_runtime_status_age():
    assert _default_columns("Sandbox") == [
        ("Runtime", ".spec.runtime"), ("Status", ".status.phase"),
        ("Age", ".metadata.creationTimestamp")]


def test_kubectl_get_wp_shows_pool_sizes():
    assert _default_columns("WarmPool") == [
        ("Runtime", ".spec.runtime"), ("Min", ".spec.minSize"), ("Max", ".spec.maxSize"),
        ("Available", ".status.availablePods"), ("Assigned", ".status.assignedPods"),
        ("Age", ".metadata.creationTimestamp")]


# --------------------------------------------------------------------------------------
# Structural schemas

@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind):
    root = schema_of(kind)
    # the root's metadata may only be a bare object (name/generateName aside)
    meta = root["properties"].get("metadata", {"type": "object"})
    assert meta["type"] == "object" and set(meta.get("properties", {})) <= {"name", "generateName"}
    assert "default" not in root
    for path, node in schema_nodes(root):
        assert isinstance(node, dict), path
        unknown = set(node) - VALIDATED_KEYWORDS - ANNOTATION_KEYWORDS
        assert not unknown, f"{path}: keywords the validator does not implement: {unknown}"
        free = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string")
        assert "type" in node or free, f"{path}: no type"
        if "type" in node:
            assert node["type"] in TYPE_CHECKS, f"{path}: type {node['type']!r}"
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{path}: array without items"
        if node.get("type") == "object" and path != "$.metadata":
            assert "properties" in node or "additionalProperties" in node or free, \
                f"{path}: object with no declared fields would be pruned empty"
        assert not ("properties" in node and "additionalProperties" in node), \
            f"{path}: properties and additionalProperties are mutually exclusive"
        for key in node.get("required", []):
            assert key in node.get("properties", {}), f"{path}: required {key!r} not declared"
        if "pattern" in node:
            re.compile(node["pattern"])
            assert node.get("type") == "string", f"{path}: pattern on a non-string"
        for value in node.get("enum", []):
            assert not validate({k: v for k, v in node.items() if k != "enum"}, value), \
                f"{path}: enum value {value!r} does not fit the node"
        if "default" in node:
            assert not path.startswith("$.metadata"), f"{path}: default under metadata"
            assert not validate(node, node["default"], path), \
                f"{path}: default {node['default']!r} is invalid: {validate(node, node['default'])}"


def test_quantity_patterns_follow_api_md():
    """CPU: whole/decimal cores and millicores; memory/storage: binary-suffixed integers."""
    cpu_fields = [("Sandbox", "spec.resources.cpu"), ("WarmPool", "spec.resources.cpu"),
                  ("SandboxProfile", "spec.resourceDefaults.cpu"),
                  ("RuntimeEnvironment", "spec.resourceRequirements.minCpu"),
                  ("RuntimeEnvironment", "spec.resourceRequirements.recommendedCpu")]
    for kind, field in cpu_fields:
        assert schema_at(schema_of(kind), "." + field)["pattern"] == CPU_PATTERN, field
    mem_fields = [("Sandbox", "spec.resources.memory"),
                  ("Sandbox", "spec.resources.ephemeralStorage"),
                  ("Sandbox", "spec.storage.volumeSize"), ("WarmPool", "spec.resources.memory"),
                  ("SandboxProfile", "spec.resourceDefaults.memory"),
                  ("RuntimeEnvironment", "spec.resourceRequirements.minMemory")]
    for kind, field in mem_fields:
        node = schema_at(schema_of(kind), "." + field)
        assert re.search(node["pattern"], "512Mi") and not re.search(node["pattern"], "512MB")


def test_sandbox_schema_has_the_api_md_additions():
    s = schema_of("Sandbox")
    spec = s["properties"]["spec"]
    assert spec["required"] == ["runtime"]
    assert spec["properties"]["useWarmPool"]["type"] == "boolean"
    assert spec["properties"]["useWarmPool"]["default"] is True
    assert spec["properties"]["user"]["type"] == "string"
    assert spec["properties"]["securityLevel"]["enum"] == ["standard", "high", "custom"]
    assert spec["properties"]["timeout"]["default"] == 300
    labels = spec["properties"]["labels"]
    assert labels["type"] == "object" and labels["additionalProperties"] == {"type": "string"}
    status = s["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == ["Pending", "Creating", "Running", "Terminating",
                                       "Terminated", "Failed"]
    assert set(status["warmPodRef"]["properties"]) == {"name", "namespace"}
    assert status["agentPublicKey"]["type"] == "string"
    assert status["observedGeneration"]["type"] == "integer"
    assert status["observedGeneration"]["format"] == "int64"
    for field in ("startTime", "expiresAt"):
        assert status[field]["format"] == "date-time"
    for field in ("podName", "podNamespace", "endpoint"):
        assert status[field]["type"] == "string"
    assert set(status["conditions"]["items"]["properties"]) == {
        "type", "status", "reason", "message", "lastTransitionTime"}
    assert set(status["resources"]["properties"]) == {"cpuUsage", "memoryUsage"}


def test_runtime_environment_has_an_interpreter_path():
    node = schema_of("RuntimeEnvironment")["properties"]["spec"]["properties"]["interpreter"]
    assert node["type"] == "string"
    assert not validate(node, "/usr/bin/python3")
    assert validate(node, "python3")


# --------------------------------------------------------------------------------------
# Examples

@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_is_valid(name):
    obj = load_example(name)
    kind, want_name = EXAMPLES[name]
    assert obj["kind"] == kind
    if want_name:
        assert obj["metadata"]["name"] == want_name
    if KINDS[kind]["scope"] == "Namespaced":
        assert obj["metadata"]["namespace"] == EXAMPLE_NAMESPACE
    assert "status" not in obj, "examples are applied with kubectl; status is the controllers'"
    assert object_errors(obj) == []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_labels_are_sanitized(name):
    """Label values cannot hold ':' (or anything but [-A-Za-z0-9_.], 63 at most): runtime
    names such as python:3.11 must appear in labels only sanitized."""
    obj = load_example(name)
    labels = obj["metadata"].get("labels", {})
    for key, value in labels.items():
        assert isinstance(value, str) and len(value) <= 63, (key, value)
        assert LABEL_VALUE_RE.fullmatch(value), f"{key}={value!r} is not a label value"
        assert sanitize_label_value(value) == value
    runtime = obj.get("spec", {}).get("runtime")
    if runtime and "llmsafespace.dev/runtime" in labels:
        assert labels["llmsafespace.dev/runtime"] == sanitize_label_value(runtime)


def test_local_mode_runtimes():
    want = {
        "runtime-python.yaml": ("python", "3.11", "llmsafespace/python:3.11", "/usr/bin/python3", "pip"),
        "runtime-bash.yaml": ("bash", None, None, "/bin/bash", None),
        "runtime-node.yaml": ("nodejs", "20", None, "/usr/bin/node", "npm"),
    }
    for name, (language, version, image, interpreter, manager) in want.items():
        spec = load_example(name)["spec"]
        assert spec["language"] == language, name
        assert spec["interpreter"] == interpreter, name
        assert spec.get("packageManager") == manager, name
        if version:
            assert spec["version"] == version, name
        if image:
            assert spec["image"] == image, name


def test_local_mode_warm_pool():
    spec = load_example("warmpool-python.yaml")["spec"]
    assert spec["runtime"] == "python:3.11"
    assert (spec["minSize"], spec["maxSize"], spec["securityLevel"]) == (2, 10, "standard")
    assert spec["autoScaling"] == {"enabled": True, "targetUtilization": 80,
                                   "scaleDownDelay": 300}


def test_every_runtime_named_by_an_example_exists():
    """spec.runtime "python:3.11" names the RuntimeEnvironment python-3.11, and every
    RuntimeEnvironment is named <language>-<version>."""
    runtimes = {}
    for name, (kind, _) in EXAMPLES.items():
        obj = load_example(name)
        if kind == "RuntimeEnvironment":
            spec = obj["spec"]
            assert obj["metadata"]["name"] == sanitize_label_value(
                f"{spec['language']}:{spec['version']}")
            runtimes[obj["metadata"]["name"]] = obj
    for name, (kind, _) in EXAMPLES.items():
        runtime = load_example(name)["spec"].get("runtime")
        if runtime:
            assert sanitize_label_value(runtime) in runtimes, f"{name}: {runtime}"


def test_profile_references_resolve():
    profiles = {load_example(n)["metadata"]["name"] for n, (k, _) in EXAMPLES.items()
                if k == "SandboxProfile"}
    for name in EXAMPLES:
        ref = load_example(name)["spec"].get("profileRef")
        if ref:
            assert ref["name"] in profiles, name


# Status as the controllers write it (examples carry none), validated against the schemas.
STATUSES = {
    "sandbox.yaml": {
        "observedGeneration": 1, "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady",
                        "message": "agent answered", "lastTransitionTime": "2024-05-01T10:00:03Z"}],
        "podName": "sandbox-example", "podNamespace": "llmsafespace",
        "warmPodRef": {"name": "python-default-x7k2p", "namespace": "llmsafespace"},
        "endpoint": "tcp://10.0.0.7:7430",
        "agentPublicKey": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
        "startTime": "2024-05-01T10:00:03Z", "expiresAt": "2024-05-01T10:10:03Z",
        "resources": {"cpuUsage": "12m", "memoryUsage": "48Mi"},
    },
    "warmpool.yaml": {
        "observedGeneration": 2, "availablePods": 3, "assignedPods": 2, "pendingPods": 0,
        "lastScaleTime": "2024-05-01T10:00:00Z",
        "conditions": [{"type": "Ready", "status": "True", "reason": "PoolReady",
                        "message": "Warm pool is ready",
                        "lastTransitionTime": "2024-05-01T10:05:00.123+02:00"}],
    },
    "warmpod.yaml": {
        "phase": "Assigned", "podName": "python-default-x7k2p", "podNamespace": "llmsafespace",
        "endpoint": "tcp://10.0.0.7:7430", "agentPublicKey": "x" * 40,
        "assignedTo": "sandbox-example", "assignedAt": "2024-05-01T10:00:01Z",
    },
    "runtimeenvironment.yaml": {"available": True, "lastValidated": "2024-05-01T09:00:00Z"},
    "sandboxprofile.yaml": {"observedGeneration": 1},
}


@pytest.mark.parametrize("name", sorted(STATUSES))
def test_controller_status_is_valid(name):
    obj = load_example(name)
    obj["status"] = STATUSES[name]
    assert object_errors(obj) == []


# --------------------------------------------------------------------------------------
# The validator rejects what Kubernetes would reject

def _sandbox(**spec_changes):
    obj = copy.deepcopy(load_example("sandbox.yaml"))
    for dotted, value in spec_changes.items():
        node = obj["spec"]
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return obj


_DELETE = object()


def _rejected(obj, path, keyword):
    """The object is invalid, and for the expected reason."""
    errors = object_errors(obj)
    assert errors, "accepted an invalid object"
    assert any(e.startswith(f"$.{path}:") and f": {keyword}" in e for e in errors), errors


def test_base_sandbox_is_valid():
    assert object_errors(_sandbox()) == []


def test_rejects_sandbox_without_runtime():
    _rejected(_sandbox(runtime=_DELETE), "spec", "required")


def test_rejects_unknown_security_level():
    _rejected(_sandbox(securityLevel="ultra"), "spec.securityLevel", "enum")


def test_rejects_timeout_zero():
    _rejected(_sandbox(timeout=0), "spec.timeout", "minimum")


def test_rejects_timeout_above_an_hour():
    _rejected(_sandbox(timeout=3601), "spec.timeout", "maximum")


def test_accepts_timeout_bounds():
    assert object_errors(_sandbox(timeout=1)) == []
    assert object_errors(_sandbox(timeout=3600)) == []


def test_rejects_timeout_as_string():
    _rejected(_sandbox(timeout="300"), "spec.timeout", "type")


def test_rejects_cpu_abc():
    _rejected(_sandbox(resources__cpu="abc"), "spec.resources.cpu", "pattern")


@pytest.mark.parametrize("cpu", ["1.", ".5", "500M", "1 ", "-1", "0.5m", ""])
def test_rejects_malformed_cpu(cpu):
    _rejected(_sandbox(resources__cpu=cpu), "spec.resources.cpu", "pattern")


def test_rejects_unquoted_cpu_number():
    _rejected(_sandbox(resources__cpu=1), "spec.resources.cpu", "type")


@pytest.mark.parametrize("cpu", ["1", "0.5", "500m", "2", "250m", "1.25"])
def test_accepts_cpu_cores_and_millicores(cpu):
    assert object_errors(_sandbox(resources__cpu=cpu)) == []


def test_rejects_memory_in_megabytes():
    _rejected(_sandbox(resources__memory="512MB"), "spec.resources.memory", "pattern")


def test_rejects_unknown_spec_field():
    _rejected(_sandbox(image="evil/image:latest"), "spec.image", "unknown field")


def test_rejects_non_string_user_label():
    _rejected(_sandbox(labels={"n": 1}), "spec.labels.n", "type")


def test_rejects_bad_egress_port_and_protocol():
    egress = [{"domain": "pypi.org", "ports": [{"port": 70000, "protocol": "ICMP"}]}]
    obj = _sandbox(networkAccess__egress=egress)
    _rejected(obj, "spec.networkAccess.egress[0].ports[0].port", "maximum")
    _rejected(obj, "spec.networkAccess.egress[0].ports[0].protocol", "enum")


def test_rejects_non_boolean_use_warm_pool():
    _rejected(_sandbox(useWarmPool="yes"), "spec.useWarmPool", "type")


def test_rejects_bad_status():
    obj = _sandbox()
    obj["status"] = {"phase": "Exploded", "observedGeneration": "1",
                     "startTime": "yesterday", "conditions": [{"type": "Ready"}]}
    _rejected(obj, "status.phase", "enum")
    _rejected(obj, "status.observedGeneration", "type")
    _rejected(obj, "status.startTime", "format")
    _rejected(obj, "status.conditions[0]", "required")


def test_rejects_warm_pool_with_negative_min_size():
    obj = load_example("warmpool-python.yaml")
    obj["spec"]["minSize"] = -1
    _rejected(obj, "spec.minSize", "minimum")


def test_rejects_warm_pool_utilization_above_100():
    obj = load_example("warmpool-python.yaml")
    obj["spec"]["autoScaling"]["targetUtilization"] = 101
    _rejected(obj, "spec.autoScaling.targetUtilization", "maximum")


def test_rejects_relative_interpreter():
    obj = load_example("runtime-python.yaml")
    obj["spec"]["interpreter"] = "python3"
    _rejected(obj, "spec.interpreter", "pattern")


def test_rejects_runtime_that_cannot_name_a_runtime_environment():
    _rejected(_sandbox(runtime="Python 3.11"), "spec.runtime", "pattern")
    _rejected(_sandbox(runtime="python:3.11; rm -rf /"), "spec.runtime", "pattern")


def test_rejects_unquoted_timestamp():
    obj = load_example("warmpod.yaml")
    obj["spec"]["lastHeartbeat"] = datetime.datetime(2024, 5, 1, 10, 5)
    _rejected(obj, "spec.lastHeartbeat", "datetime")


def test_rejects_unsanitized_label_value():
    obj = _sandbox()
    obj["metadata"]["labels"]["llmsafespace.dev/runtime"] = "python:3.11"
    errors = object_errors(obj)
    assert any("not a valid label value" in e for e in errors), errors
    assert sanitize_label_value("python:3.11") == "python-3.11"
    assert not label_errors("llmsafespace.dev/runtime", sanitize_label_value("python:3.11"))
    assert label_errors("x", "a" * 64)


def test_rejects_namespace_on_cluster_scoped_kind():
    obj = load_example("runtime-python.yaml")
    obj["metadata"]["namespace"] = "llmsafespace"
    assert "metadata.namespace: set on a cluster-scoped kind" in object_errors(obj)


# --------------------------------------------------------------------------------------
# docs/crds.md stays in step with the YAML

def test_reference_doc_names_every_field():
    doc = (ROOT / "docs" / "crds.md").read_text(encoding="utf-8")
    for kind, want in KINDS.items():
        assert f"## {kind} (`{want['shortNames'][0]}`" in doc, kind
        props = schema_of(kind)["properties"]
        for part in ("spec", "status"):
            for field in props[part].get("properties", {}):
                assert f"`{field}" in doc, f"docs/crds.md does not mention {kind}.{part}.{field}"
        phase = props["status"]["properties"].get("phase")
        for value in (phase or {}).get("enum", []):
            assert f"`{value}`" in doc, f"docs/crds.md does not mention phase {value}"
