#!/usr/bin/python3
"""fake_k8s — a fake Kubernetes API server for the tests of the Kubernetes store backend.

Usage: fake_k8s.py --dir DIR [--plain] [--token TOKEN]... [--bookmark-ms N] [--gc-delay-ms N]

At start it generates, with the openssl command, a CA (DIR/ca.crt), a server certificate
for 127.0.0.1 and localhost signed by it, and a client certificate (CN lss-test-client,
DIR/client.crt + client.key) the server accepts; it then serves HTTPS (plain HTTP with
--plain) on 127.0.0.1 on an ephemeral port and prints one JSON line
{"port", "url", "ca", "client_cert", "client_key"} on stdout when ready. It exits on
SIGTERM, and by itself when its parent process goes away (it never outlives a test).

What it does, as kube-apiserver does it, for everything lss_store_k8s uses:
- the REST paths of the five llmsafespace.dev/v1 CRDs (runtimeenvironments cluster-scoped)
  and of core v1 pods, secrets, services, events, persistentvolumeclaims,
  networking.k8s.io/v1 networkpolicies and coordination.k8s.io/v1 leases;
- resourceVersion: one global counter, a decimal string; uid; creationTimestamp;
  generation 1 on create, bumped when anything but metadata and status changes, and when
  deletionTimestamp is set;
- status subresource semantics for every kind: status dropped on create, ignored by PUT
  and PATCH of the object, the only thing PUT/PATCH of .../status changes;
- 409 on a stale resourceVersion or a uid / resourceVersion precondition, AlreadyExists
  on a taken name; 404; 422 (Status with causes) for invalid names, labels, annotations,
  finalizers, ownerReferences, a missing resourceVersion on update, and finalizers added
  while deleting; 400 for bodies whose apiVersion, kind, name or namespace do not match
  the URL, malformed selectors and continue tokens; 415 for patch types other than merge;
- no-op updates write nothing (same resourceVersion, no event);
- metadata.finalizers + deletionTimestamp: DELETE of an object with finalizers only marks
  it (once); removing the last finalizer removes it; preconditions on DELETE;
- ownerReference garbage collection in the background (a thread, shortly after the owner
  is removed; a dependent goes when none of its owners exists; finalizers respected);
- list paging with limit/continue (base64 continue tokens holding the first page's
  resourceVersion and the last key; later pages are served from a snapshot at that
  resourceVersion, as etcd serves them); 410 Expired for a token older than the
  compaction point; equality-based label selectors (k=v, k==v, k!=v, k, !k);
- watch: chunked stream of one JSON event per line from a resourceVersion (ADDED /
  MODIFIED / DELETED in resourceVersion order; "0" or none = synthetic ADDED of the
  current objects first), BOOKMARK events with allowWatchBookmarks (every --bookmark-ms,
  and on demand), timeoutSeconds, an ERROR event with a 410 Status for a compacted
  resourceVersion (also for a watch that falls behind a compaction);
- bearer-token auth (--token, replaceable at run time) and client-certificate auth over
  TLS; 401 Status otherwise.

Test hooks (no auth), all JSON:
  POST /_fake/compact {"rv": "N"}      drop events up to N (default: now)
  POST /_fake/inject {...}             answer matching requests specially (see _inject)
  POST /_fake/clear                    drop pending injections
  POST /_fake/tokens {"tokens": [..]}  the accepted bearer tokens
  POST /_fake/bookmark                 every open watch sends a BOOKMARK now
  POST /_fake/watches {"action": "end" | "drop"}  end open watches cleanly / cut them
  GET  /_fake/requests                 the request log ({method, path, query, auth, t})
  POST /_fake/requests/clear
  GET  /_fake/state                    {rv, compacted, watches, objects}

What it does NOT cover (a real cluster differs here):
- no schema validation or defaulting (CRD openAPI schemas, Pod spec rules, Service
  ports...), no admission, no RBAC (an accepted token or certificate may do anything);
- namespaces always exist (no Namespace objects; real servers answer 404 for objects in
  a namespace that does not exist, and 403 in one being deleted);
- every kind behaves like a CRD with a status subresource (real Pods, for instance, have
  graceful deletion with deletionGracePeriodSeconds, a server-set status on create, and
  Secrets/Services no generation);
- only merge patch (no JSON patch, strategic merge patch or server-side apply), no
  managedFields, no dry-run, no subresources but status, no field selectors, no set-based
  selectors (in, notin), no resourceVersion/resourceVersionMatch on lists, no
  sendInitialEvents, no remainingItemCount;
- propagationPolicy Orphan and Foreground are treated as Background;
- HTTP/1.1 only (real servers also speak HTTP/2), no watch over WebSocket, no
  Protobuf, no API discovery (/api, /apis), no OpenAPI, no health endpoints;
- compaction only happens when a test asks for it; one process, all in memory.
"""
import argparse
import base64
import bisect
import copy
import datetime
import json
import os
import random
import re
import signal
import socket
import ssl
import string
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {
    ("llmsafespace.dev", "v1", "sandboxes"): ("Sandbox", True),
    ("llmsafespace.dev", "v1", "warmpools"): ("WarmPool", True),
    ("llmsafespace.dev", "v1", "warmpods"): ("WarmPod", True),
    ("llmsafespace.dev", "v1", "sandboxprofiles"): ("SandboxProfile", True),
    ("llmsafespace.dev", "v1", "runtimeenvironments"): ("RuntimeEnvironment", False),
    ("", "v1", "pods"): ("Pod", True),
    ("", "v1", "secrets"): ("Secret", True),
    ("", "v1", "services"): ("Service", True),
    ("", "v1", "events"): ("Event", True),
    ("", "v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", True),
    ("networking.k8s.io", "v1", "networkpolicies"): ("NetworkPolicy", True),
    ("coordination.k8s.io", "v1", "leases"): ("Lease", True),
}
CLIENT_CN = "lss-test-client"
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # k8s' generateName alphabet
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_TOKEN = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
MAX_BODY = 3 * 1024 * 1024
MAX_LOG = 10000


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_subdomain(s):
    return (isinstance(s, str) and 0 < len(s) <= 253 and
            all(DNS_LABEL.match(p) and len(p) <= 63 for p in s.split(".")))


def is_label_token(s):
    return isinstance(s, str) and 0 < len(s) <= 63 and LABEL_TOKEN.match(s) is not None


def is_qualified(key):
    if not isinstance(key, str):
        return False
    if "/" in key:
        prefix, _, name = key.partition("/")
        return is_subdomain(prefix) and is_label_token(name)
    return is_label_token(key)


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


class Resource:
    def __init__(self, group, version, plural, kind, namespaced):
        self.group, self.version, self.plural = group, version, plural
        self.kind, self.namespaced = kind, namespaced
        self.api_version = f"{group}/{version}" if group else version
        self.qualified = f"{plural}.{group}" if group else plural

    def invalid(self, name, causes):
        first = causes[0]
        msg = (f'{self.kind}{"." + self.group if self.group else ""} "{name}" is invalid: '
               + ", ".join(f'{c["field"]}: {c["message"]}' for c in causes))
        del first
        return ApiError(422, "Invalid", msg, {"name": name, "group": self.group,
                                              "kind": self.kind, "causes": causes})

    def not_found(self, name):
        return ApiError(404, "NotFound", f'{self.qualified} "{name}" not found',
                        {"name": name, "group": self.group, "kind": self.plural})

    def conflict(self, name, why):
        return ApiError(409, "Conflict",
                        f'Operation cannot be fulfilled on {self.qualified} "{name}": {why}',
                        {"name": name, "group": self.group, "kind": self.plural})


class State:
    def __init__(self, tokens, bookmark_ms, gc_delay_ms):
        self.cv = threading.Condition()
        self.rv = 1
        self.objects = {}    # (group, plural, ns, name) -> object
        self.events = []     # dicts: rv, type, key, obj, prev
        self.event_rvs = []  # parallel list for bisect
        self.compacted = 0
        self.tokens = set(tokens)
        self.injections = []
        self.requests = []
        self.bookmark_gen = 0
        self.end_gen = 0
        self.drop_gen = 0
        self.watches = 0
        self.bookmark_ms = bookmark_ms
        self.gc_delay_ms = gc_delay_ms
        self.gc_queue = []
        self.stopping = False

    # ---------------------------------------------------------------- writes (under cv)
    def commit(self, etype, key, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        prev = self.objects.get(key)
        if etype == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append({"rv": self.rv, "type": etype, "key": key,
                            "obj": copy.deepcopy(obj), "prev": prev})
        self.event_rvs.append(self.rv)
        self.cv.notify_all()
        if etype == "DELETED":
            self.gc_queue.append((time.monotonic() + self.gc_delay_ms / 1000.0,
                                  obj["metadata"].get("uid")))
        return obj

    def snapshot(self, at_rv):
        objs = dict(self.objects)
        for e in reversed(self.events):
            if e["rv"] <= at_rv:
                break
            if e["prev"] is None:
                objs.pop(e["key"], None)
            else:
                objs[e["key"]] = e["prev"]
        return objs

    def compact(self, upto):
        upto = min(upto, self.rv)
        if upto <= self.compacted:
            return self.compacted
        self.compacted = upto
        i = bisect.bisect_right(self.event_rvs, upto)
        del self.events[:i]
        del self.event_rvs[:i]
        self.cv.notify_all()
        return self.compacted


STATE = None


# -------------------------------------------------------------------- validation

def validate(res, obj, name):
    causes = []
    meta = obj.get("metadata")

    def bad(field, message, reason="FieldValueInvalid"):
        causes.append({"reason": reason, "message": message, "field": field})

    if not is_subdomain(name):
        bad("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
            "consist of lower case alphanumeric characters, '-' or '.', and must start and "
            "end with an alphanumeric character")
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            bad("metadata.labels", "Invalid value: must be an object")
        else:
            for k, v in labels.items():
                if not is_qualified(k):
                    bad("metadata.labels", f'Invalid value: "{k}": name part must consist of '
                        "alphanumeric characters, '-', '_' or '.'")
                if not isinstance(v, str) or (v != "" and not is_label_token(v)):
                    bad("metadata.labels", f'Invalid value: "{v}": a valid label must be an '
                        "empty string or consist of alphanumeric characters, '-', '_' or '.'")
    ann = meta.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            bad("metadata.annotations", "Invalid value: must be an object of strings")
        else:
            for k in ann:
                if not is_qualified(k):
                    bad("metadata.annotations", f'Invalid value: "{k}": name part must consist '
                        "of alphanumeric characters, '-', '_' or '.'")
            if sum(len(k) + len(v) for k, v in ann.items()) > 256 * 1024:
                bad("metadata.annotations", "Too long: must have at most 262144 bytes",
                    "FieldValueTooLong")
    fin = meta.get("finalizers")
    if fin is not None:
        if not isinstance(fin, list) or not all(is_qualified(f) for f in fin):
            bad("metadata.finalizers", "Invalid value: finalizers must be qualified names")
    refs = meta.get("ownerReferences")
    if refs is not None:
        if not isinstance(refs, list):
            bad("metadata.ownerReferences", "Invalid value: must be a list")
        else:
            controllers = 0
            for i, r in enumerate(refs):
                for f in ("apiVersion", "kind", "name", "uid"):
                    if not isinstance(r, dict) or not isinstance(r.get(f), str) or not r.get(f):
                        bad(f"metadata.ownerReferences[{i}].{f}", "Required value",
                            "FieldValueRequired")
                if isinstance(r, dict) and r.get("controller") is True:
                    controllers += 1
            if controllers > 1:
                bad("metadata.ownerReferences", "Invalid value: Only one reference can have "
                    "Controller set to true")
    for part in ("spec", "status"):
        if part in obj and obj[part] is not None and not isinstance(obj[part], dict):
            bad(part, "Invalid value: must be an object")
    if causes:
        raise res.invalid(name, causes)


def check_type(res, body):
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body of the request is not a JSON object")
    if body.get("apiVersion") != res.api_version:
        raise ApiError(400, "BadRequest",
                       f"the API version in the data ({body.get('apiVersion')}) does not match "
                       f"the expected API version ({res.api_version})")
    if body.get("kind") != res.kind:
        raise ApiError(400, "BadRequest",
                       f"the kind in the data ({body.get('kind')}) does not match the expected "
                       f"kind ({res.kind})")
    meta = body.get("metadata")
    if meta is None:
        body["metadata"] = meta = {}
    if not isinstance(meta, dict):
        raise ApiError(400, "BadRequest", "metadata must be an object")
    return meta


def content_of(obj):
    """Everything generation counts: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


# -------------------------------------------------------------------- selectors

def parse_selector(text):
    terms = []
    if not text:
        return terms
    for t in text.split(","):
        t = t.strip()
        if re.search(r"\s(in|notin)\s*\(", " " + t) or "(" in t:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: set-based "
                           f"selectors are not supported by this fake: {t}")
        if "!=" in t:
            k, v = t.split("!=", 1)
            op = "!="
        elif "==" in t:
            k, v = t.split("==", 1)
            op = "="
        elif "=" in t:
            k, v = t.split("=", 1)
            op = "="
        elif t.startswith("!"):
            k, v, op = t[1:], None, "!"
        else:
            k, v, op = t, None, "exists"
        if not is_qualified(k) or (v is not None and v != "" and not is_label_token(v)):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label "
                           f"selector term: {t!r}")
        terms.append((op, k, v))
    return terms


def matches(terms, obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for op, k, v in terms:
        if op == "=" and labels.get(k) != v:
            return False
        if op == "!=" and labels.get(k) == v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "!" and k in labels:
            return False
    return True


# -------------------------------------------------------------------- continue tokens

def encode_continue(rv, ns, name):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{ns}/{name}\x00"})
    return base64.b64encode(raw.encode()).decode()


def decode_continue(token):
    try:
        d = json.loads(base64.b64decode(token.encode(), validate=True))
        if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int):
            raise ValueError("bad version or resourceVersion")
        ns, _, rest = d["start"].partition("/")
        return d["rv"], ns, rest.rstrip("\x00")
    except Exception as e:  # noqa: BLE001 - any malformed token is a 400
        raise ApiError(400, "BadRequest", f"continue key is not valid: {e}") from None


# -------------------------------------------------------------------- the operations

def key_of(res, ns, name):
    return (res.group, res.plural, ns or "", name)


def op_get(res, ns, name):
    with STATE.cv:
        obj = STATE.objects.get(key_of(res, ns, name))
        if obj is None:
            raise res.not_found(name)
        return 200, copy.deepcopy(obj)


def op_list(res, ns, q):
    terms = parse_selector(q.get("labelSelector", ""))
    try:
        limit = int(q.get("limit", "0") or 0)
    except ValueError:
        raise ApiError(400, "BadRequest", "limit: must be an integer") from None
    with STATE.cv:
        start = None
        if q.get("continue"):
            at_rv, cns, cname = decode_continue(q["continue"])
            if at_rv < STATE.compacted:
                raise ApiError(410, "Expired",
                               "The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without the "
                               "continue parameter.")
            objs = STATE.snapshot(at_rv)
            start = (cns, cname)
        else:
            at_rv = STATE.rv
            objs = STATE.objects
        keys = sorted(k for k in objs if k[0] == res.group and k[1] == res.plural and
                      (not ns or k[2] == ns))
        items = []
        more = None
        for k in keys:
            if start is not None and (k[2], k[3]) <= start:
                continue
            o = objs[k]
            if not matches(terms, o):
                continue
            if limit and len(items) == limit:
                more = items[-1]
                break
            items.append(copy.deepcopy(o))
    if not res.group:  # items of built-in lists come without apiVersion and kind
        for o in items:
            o.pop("apiVersion", None)
            o.pop("kind", None)
    meta = {"resourceVersion": str(at_rv)}
    if more is not None:
        meta["continue"] = encode_continue(at_rv, more["metadata"].get("namespace", ""),
                                           more["metadata"]["name"])
    return 200, {"kind": res.kind + "List", "apiVersion": res.api_version, "metadata": meta,
                 "items": items}


def op_create(res, ns, body):
    meta = check_type(res, body)
    if res.namespaced:
        if meta.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                           "match the namespace sent on the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    name = meta.get("name")
    if not name:
        gen = meta.get("generateName")
        if not isinstance(gen, str) or not gen:
            raise res.invalid("", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                    "message": "Required value: name or generateName is "
                                               "required"}])
        name = gen + "".join(random.choice(NAME_CHARS) for _ in range(5))
        meta["name"] = name
    validate(res, body, name)
    obj = copy.deepcopy(body)
    m = obj["metadata"]
    for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "generation", "managedFields"):
        m.pop(f, None)
    obj.pop("status", None)
    m["uid"] = str(uuid.uuid4())
    m["creationTimestamp"] = now_rfc3339()
    m["generation"] = 1
    with STATE.cv:
        k = key_of(res, ns, name)
        if k in STATE.objects:
            raise ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists',
                           {"name": name, "group": res.group, "kind": res.plural})
        return 201, copy.deepcopy(STATE.commit("ADDED", k, obj))


def remove_locked(res_key, obj):
    """Removes obj (under the lock): DELETED event, then the GC looks at its dependents."""
    return STATE.commit("DELETED", res_key, copy.deepcopy(obj))


def write_locked(res, k, old, new):
    """Common tail of updates: no-op, removal with the last finalizer, or MODIFIED."""
    if new == old:
        return copy.deepcopy(old)
    if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
        return copy.deepcopy(remove_locked(k, new))
    return copy.deepcopy(STATE.commit("MODIFIED", k, new))


def op_update(res, ns, name, body, status_only):
    meta = check_type(res, body)
    if meta.get("name") not in (None, name):
        raise ApiError(400, "BadRequest", f"the name of the object ({meta.get('name')}) does "
                       f"not match the name on the URL ({name})")
    if res.namespaced and meta.get("namespace") not in (None, "", ns):
        raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                       "match the namespace sent on the request")
    with STATE.cv:
        k = key_of(res, ns, name)
        old = STATE.objects.get(k)
        if old is None:
            raise res.not_found(name)
        rv = meta.get("resourceVersion")
        if not rv:
            raise res.invalid(name, [{"reason": "FieldValueInvalid",
                                      "field": "metadata.resourceVersion",
                                      "message": "Invalid value: 0x0: must be specified for an "
                                                 "update"}])
        if rv != old["metadata"]["resourceVersion"]:
            raise res.conflict(name, "the object has been modified; please apply your changes "
                               "to the latest version and try again")
        uid = meta.get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise res.conflict(name, f"Precondition failed: UID in precondition: {uid}, UID in "
                               f"object meta: {old['metadata']['uid']}")
        meta["name"] = name
        validate(res, body, name)
        new = copy.deepcopy(old)
        if status_only:
            if body.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = copy.deepcopy(body["status"])
            return 200, write_locked(res, k, old, new)
        for key in list(new):
            if key not in ("apiVersion", "kind", "metadata", "status"):
                del new[key]
        for key, v in body.items():
            if key not in ("apiVersion", "kind", "metadata", "status"):
                new[key] = copy.deepcopy(v)
        nm = new["metadata"]
        for f in ("labels", "annotations", "finalizers", "ownerReferences"):
            if meta.get(f) is not None:
                nm[f] = copy.deepcopy(meta[f])
            else:
                nm.pop(f, None)
        if old["metadata"].get("deletionTimestamp"):
            added = [f for f in nm.get("finalizers", [])
                     if f not in old["metadata"].get("finalizers", [])]
            if added:
                raise res.invalid(name, [{"reason": "FieldValueForbidden",
                                          "field": "metadata.finalizers",
                                          "message": "Forbidden: no new finalizers can be added "
                                                     "if the object is being deleted, found new "
                                                     f"finalizers {added}"}])
        if content_of(new) != content_of(old):
            nm["generation"] = old["metadata"].get("generation", 1) + 1
        return 200, write_locked(res, k, old, new)


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def op_patch(res, ns, name, body, ctype, status_only):
    if ctype.split(";")[0].strip() != "application/merge-patch+json":
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: application/merge-patch+json (this fake); got {ctype}")
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the patch is not a JSON object")
    with STATE.cv:
        old = STATE.objects.get(key_of(res, ns, name))
        if old is None:
            raise res.not_found(name)
        want = (body.get("metadata") or {}).get("resourceVersion")
        if want and want != old["metadata"]["resourceVersion"]:
            raise res.conflict(name, "the object has been modified; please apply your changes "
                               "to the latest version and try again")
        cand = merge_patch(copy.deepcopy(old), body)
        if not isinstance(cand.get("metadata"), dict):
            raise ApiError(422, "Invalid", "metadata: must be an object")
        cand["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        cand["metadata"]["uid"] = old["metadata"]["uid"]
        cand["apiVersion"], cand["kind"] = res.api_version, res.kind
        if not status_only:
            if "status" in old:
                cand["status"] = copy.deepcopy(old["status"])
            else:
                cand.pop("status", None)
        # the same path as PUT, under the same lock (Condition locks are re-entrant)
        return op_update(res, ns, name, cand, status_only)


def delete_locked(res_key, obj, pre_rv=None, pre_uid=None):
    m = obj["metadata"]
    if pre_rv is not None and pre_rv != m["resourceVersion"]:
        raise ApiError(409, "Conflict", f"Precondition failed: ResourceVersion in precondition: "
                       f"{pre_rv}, ResourceVersion in object meta: {m['resourceVersion']}")
    if pre_uid is not None and pre_uid != m["uid"]:
        raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre_uid}, "
                       f"UID in object meta: {m['uid']}")
    if m.get("finalizers"):
        if m.get("deletionTimestamp"):
            return copy.deepcopy(obj)
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["metadata"]["generation"] = m.get("generation", 1) + 1
        return copy.deepcopy(STATE.commit("MODIFIED", res_key, new))
    return copy.deepcopy(remove_locked(res_key, obj))


def op_delete(res, ns, name, body):
    opts = {}
    if body:
        try:
            opts = json.loads(body)
        except ValueError:
            raise ApiError(400, "BadRequest", "DeleteOptions: not JSON") from None
        if not isinstance(opts, dict):
            raise ApiError(400, "BadRequest", "DeleteOptions: not an object")
    pre = opts.get("preconditions") or {}
    with STATE.cv:
        k = key_of(res, ns, name)
        obj = STATE.objects.get(k)
        if obj is None:
            raise res.not_found(name)
        return 200, delete_locked(k, obj, pre.get("resourceVersion"), pre.get("uid"))


def gc_loop():
    """Background garbage collection of dependents whose owners are all gone."""
    while True:
        with STATE.cv:
            while not STATE.stopping:
                now = time.monotonic()
                due = [u for t, u in STATE.gc_queue if t <= now]
                if due:
                    STATE.gc_queue = [(t, u) for t, u in STATE.gc_queue if t > now]
                    break
                wait = min([t for t, _ in STATE.gc_queue], default=now + 1.0) - now
                STATE.cv.wait(timeout=max(0.005, min(wait, 1.0)))
            if STATE.stopping:
                return
            live = {o["metadata"]["uid"] for o in STATE.objects.values()}
            for uid in due:
                for k, o in list(STATE.objects.items()):
                    refs = o["metadata"].get("ownerReferences") or []
                    uids = [r.get("uid") for r in refs if isinstance(r, dict)]
                    if uid in uids and not any(u in live for u in uids):
                        cur = STATE.objects.get(k)
                        if cur is not None:
                            delete_locked(k, cur)


# -------------------------------------------------------------------- HTTP

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ctx = None

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers, then body
        if self.ctx is not None:
            sock = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # clients that go away mid-request are routine in these tests


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-k8s/1"

    def setup(self):
        self.request.settimeout(60)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_K8S_VERBOSE"):
            sys.stderr.write("fake_k8s: " + fmt % args + "\n")

    # -- responses
    def send_json(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_error_status(self, e):
        self.send_json(e.code, status_obj(e.code, e.reason, e.message, e.details))

    def chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    # -- request entry points
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def auth(self):
        h = self.headers.get("Authorization", "")
        if h.startswith("Bearer "):
            with STATE.cv:
                return "token" if h[7:] in STATE.tokens else None
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName" and v == CLIENT_CN:
                            return "cert"
        return None

    def dispatch(self, method):
        try:
            u = urllib.parse.urlsplit(self.path)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error_status(ApiError(413, "RequestEntityTooLarge",
                                                "the request is too large"))
                return
            body = self.rfile.read(length) if length else b""
            if u.path.startswith("/_fake/"):
                self.hook(method, u.path, body)
                return
            who = self.auth()
            with STATE.cv:
                STATE.requests.append({"method": method, "path": u.path, "query": q,
                                       "auth": who or "none", "t": time.monotonic()})
                del STATE.requests[:-MAX_LOG]
            if who is None:
                self.send_error_status(ApiError(401, "Unauthorized", "Unauthorized"))
                return
            inj = self.take_injection(method, u.path, q)
            if inj is not None and self.inject(inj, q):
                return
            self.route(method, u.path, q, body)
        except ApiError as e:
            self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    def route(self, method, path, q, body):
        segs = [s for s in path.split("/") if s]
        try:
            if segs[0] == "api":
                group, version, rest = "", segs[1], segs[2:]
            elif segs[0] == "apis":
                group, version, rest = segs[1], segs[2], segs[3:]
            else:
                raise IndexError
            ns = None
            if len(rest) >= 3 and rest[0] == "namespaces":
                ns, rest = rest[1], rest[2:]
            plural = rest[0]
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
            if len(rest) > 3:
                raise IndexError
        except IndexError:
            raise ApiError(404, "NotFound", "the server could not find the requested resource") \
                from None
        k = KINDS.get((group, version, plural))
        if k is None or (ns is not None and not k[1]) or (sub not in (None, "status")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = Resource(group, version, plural, k[0], k[1])
        if ns is not None and not DNS_LABEL.match(ns):
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
        if res.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        parsed = None
        if method in ("POST", "PUT", "PATCH"):
            try:
                parsed = json.loads(body or b"null")
            except ValueError:
                raise ApiError(400, "BadRequest", "the body of the request is not JSON") \
                    from None
        if name is None:
            if method == "GET" and q.get("watch") in ("true", "1"):
                self.watch(res, ns, q)
                return
            if method == "GET":
                code, out = op_list(res, ns, q)
            elif method == "POST" and (ns is not None or not res.namespaced):
                code, out = op_create(res, ns, parsed)
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")
        elif method == "GET" and sub is None:
            code, out = op_get(res, ns, name)
        elif method == "GET":
            code, out = op_get(res, ns, name)
        elif method == "PUT":
            code, out = op_update(res, ns, name, parsed, sub == "status")
        elif method == "PATCH":
            code, out = op_patch(res, ns, name, parsed, self.headers.get("Content-Type", ""),
                                 sub == "status")
        elif method == "DELETE" and sub is None:
            code, out = op_delete(res, ns, name, body)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")
        self.send_json(code, out)

    # -- watch
    def watch(self, res, ns, q):
        terms = parse_selector(q.get("labelSelector", ""))
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        try:
            timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else \
                random.uniform(1800, 3600)
        except ValueError:
            raise ApiError(400, "BadRequest", "timeoutSeconds: must be an integer") from None
        rv = q.get("resourceVersion", "")
        if rv not in ("", "0") and not rv.isdigit():
            raise ApiError(400, "BadRequest", f'resourceVersion: Invalid value: "{rv}"')
        deadline = time.monotonic() + timeout

        def ours(key, obj):
            return (key[0] == res.group and key[1] == res.plural and
                    (not ns or key[2] == ns) and matches(terms, obj))

        self.start_stream()
        lines = []
        with STATE.cv:
            STATE.watches += 1
            gens = (STATE.bookmark_gen, STATE.end_gen, STATE.drop_gen)
            if rv in ("", "0"):
                for k in sorted(STATE.objects):
                    if ours(k, STATE.objects[k]):
                        lines.append({"type": "ADDED", "object": STATE.objects[k]})
                pos = STATE.rv
            else:
                pos = int(rv)
        next_bookmark = time.monotonic() + STATE.bookmark_ms / 1000.0
        try:
            if rv not in ("", "0") and pos < STATE.compacted:
                self.send_gone(pos)
                return
            self.send_lines(lines)
            while True:
                lines = []
                end = drop = bookmark = False
                with STATE.cv:
                    while True:
                        if STATE.compacted > pos:
                            break
                        i = bisect.bisect_right(STATE.event_rvs, pos)
                        evs = [e for e in STATE.events[i:] if ours(e["key"], e["obj"])]
                        now = time.monotonic()
                        g = (STATE.bookmark_gen, STATE.end_gen, STATE.drop_gen)
                        if (evs or g != gens or now >= deadline or
                                (bookmarks and now >= next_bookmark) or STATE.stopping):
                            break
                        STATE.cv.wait(timeout=max(0.01, min(deadline, next_bookmark) - now))
                    if STATE.compacted > pos:
                        gone = True
                    else:
                        gone = False
                        lines = [{"type": e["type"], "object": e["obj"]} for e in evs]
                        pos = STATE.rv
                        bookmark = bookmarks and (g[0] != gens[0] or
                                                  time.monotonic() >= next_bookmark)
                        end = g[1] != gens[1] or time.monotonic() >= deadline or STATE.stopping
                        drop = g[2] != gens[2]
                        gens = g
                if gone:
                    self.send_gone(pos)
                    return
                if drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_lines(lines)
                if bookmark:
                    self.send_lines([{"type": "BOOKMARK", "object": {
                        "kind": res.kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(pos)}}}])
                    next_bookmark = time.monotonic() + STATE.bookmark_ms / 1000.0
                if end:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
        finally:
            with STATE.cv:
                STATE.watches -= 1

    def send_lines(self, lines):
        if lines:
            self.chunk(b"".join(json.dumps(l).encode() + b"\n" for l in lines))

    def send_gone(self, pos):
        st = status_obj(410, "Expired", f"too old resource version: {pos} ({STATE.compacted})")
        self.send_lines([{"type": "ERROR", "object": st}])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- injections
    def take_injection(self, method, path, q):
        with STATE.cv:
            for inj in STATE.injections:
                if inj.get("times", 1) <= 0:
                    continue
                if inj.get("method", "*") not in ("*", method):
                    continue
                if not path.startswith(inj.get("path", "/")):
                    continue
                if "watch" in inj and inj["watch"] != (q.get("watch") in ("true", "1")):
                    continue
                inj["times"] = inj.get("times", 1) - 1
                return dict(inj)
        return None

    def inject(self, inj, q):
        """Answers as the injection says. Returns False when the request should then be
        served normally (delay_ms alone)."""
        if inj.get("delay_ms"):
            time.sleep(inj["delay_ms"] / 1000.0)
        if inj.get("stall"):
            end = time.monotonic() + inj.get("stall_ms", 60000) / 1000.0
            while time.monotonic() < end and not STATE.stopping:
                time.sleep(0.05)
            self.close_connection = True
            return True
        if inj.get("close"):
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return True
        if "huge" in inj:
            self.start_stream()
            self.chunk(b'{"kind":"List","items":[')
            piece = b'{"x":"' + b"y" * 65000 + b'"},'
            sent = 0
            while sent < inj["huge"]:
                self.chunk(piece)
                sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
            return True
        if "lines" in inj:
            self.start_stream()
            for line in inj["lines"] * inj.get("repeat", 1):
                self.chunk(line.encode() + (b"" if inj.get("no_newline") else b"\n"))
            end = time.monotonic() + inj.get("hold_ms", 0) / 1000.0
            while time.monotonic() < end and not STATE.stopping:
                time.sleep(0.02)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return True
        if "status" in inj:
            data = inj.get("body")
            if data is None:
                data = json.dumps(status_obj(inj["status"], inj.get("reason", "Injected"),
                                             inj.get("message", "injected by a test")))
            elif not isinstance(data, str):
                data = json.dumps(data)
            raw = data.encode()
            self.send_response(inj["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (inj.get("headers") or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)
            return True
        return False

    # -- hooks
    def hook(self, method, path, body):
        try:
            arg = json.loads(body) if body else {}
        except ValueError:
            self.send_json(400, {"error": "not JSON"})
            return
        with STATE.cv:
            if path == "/_fake/compact" and method == "POST":
                rv = int(arg.get("rv") or STATE.rv)
                out = {"compacted": STATE.compact(rv)}
            elif path == "/_fake/inject" and method == "POST":
                STATE.injections.append(arg)
                out = {"injections": len(STATE.injections)}
            elif path == "/_fake/clear" and method == "POST":
                STATE.injections = []
                out = {}
            elif path == "/_fake/tokens" and method == "POST":
                STATE.tokens = set(arg.get("tokens") or [])
                out = {}
            elif path == "/_fake/bookmark" and method == "POST":
                STATE.bookmark_gen += 1
                STATE.cv.notify_all()
                out = {}
            elif path == "/_fake/watches" and method == "POST":
                if arg.get("action") == "drop":
                    STATE.drop_gen += 1
                else:
                    STATE.end_gen += 1
                STATE.cv.notify_all()
                out = {"watches": STATE.watches}
            elif path == "/_fake/requests" and method == "GET":
                out = {"requests": STATE.requests}
            elif path == "/_fake/requests/clear" and method == "POST":
                STATE.requests = []
                out = {}
            elif path == "/_fake/state" and method == "GET":
                out = {"rv": STATE.rv, "compacted": STATE.compacted,
                       "watches": STATE.watches, "objects": len(STATE.objects)}
            else:
                out = None
        if out is None:
            self.send_json(404, {"error": "no such hook"})
        else:
            self.send_json(200, out)


# -------------------------------------------------------------------- start

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=fake-k8s-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for who, cn in (("server", "fake-k8s"), ("client", CLIENT_CN)):
        openssl("req", "-new", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr",
                "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", str(random.randrange(1, 2 ** 62)), "-days", "2",
                "-extfile", f"{who}.ext", "-out", f"{who}.crt", cwd=d)
    for name in ("ca.key", "server.key", "client.key"):
        os.chmod(os.path.join(d, name), 0o600)


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--token", action="append", default=[])
    ap.add_argument("--bookmark-ms", type=int, default=60000)
    ap.add_argument("--gc-delay-ms", type=int, default=20)
    a = ap.parse_args()
    STATE = State(a.token, a.bookmark_ms, a.gc_delay_ms)
    httpd = Server(("127.0.0.1", 0), Handler)
    if not a.plain:
        make_certs(a.dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(a.dir, "server.crt"), os.path.join(a.dir, "server.key"))
        ctx.load_verify_locations(os.path.join(a.dir, "ca.crt"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        httpd.ctx = ctx
    port = httpd.server_address[1]
    parent = os.getppid()

    def stop(*_):
        with STATE.cv:
            STATE.stopping = True
            STATE.cv.notify_all()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    def orphan_watch():
        while not STATE.stopping:
            if os.getppid() != parent:
                stop()
                return
            time.sleep(0.5)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=gc_loop, daemon=True).start()
    threading.Thread(target=orphan_watch, daemon=True).start()
    scheme = "http" if a.plain else "https"
    print(json.dumps({"port": port, "url": f"{scheme}://127.0.0.1:{port}",
                      "ca": os.path.join(a.dir, "ca.crt"),
                      "client_cert": os.path.join(a.dir, "client.crt"),
                      "client_key": os.path.join(a.dir, "client.key")}), flush=True)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()


if __name__ == "__main__":
    main()
