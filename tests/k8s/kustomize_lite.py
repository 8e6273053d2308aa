"""kustomize_lite: a renderer of exactly the kustomize features k8s/ uses, so that the
manifest tests run where kubectl is missing (CI). test_manifests.py checks that its output
equals `kubectl kustomize` wherever kubectl exists.

Supported, and nothing else (anything else in a kustomization raises Unsupported, so a
new feature cannot slip in unchecked):
  resources   files (one or more YAML documents) and directories holding a
              kustomization.yaml (rendered recursively, in order)
  labels      entries with `pairs` only (includeSelectors / includeTemplates absent or
              false): the pairs are added to every object's metadata.labels
  patches     entries with `path` (a file of one or more strategic-merge patches) and an
              optional `target` (kind, name, namespace, group, version); without a target
              a patch applies to the object of its own apiVersion group, kind, name and
              namespace, which must exist
A strategic merge here: maps merge recursively, a null value deletes the key, lists of
maps with a known merge key (containers, initContainers and env, volumes by name;
volumeMounts by mountPath; ports by containerPort) merge item by item (new items are
appended), any other list is replaced. `$patch` and other directives raise Unsupported.
Transformers run as kustomize runs them: patches, then labels, per kustomization.
"""
import copy
import os

import yaml

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "labels", "patches"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class Unsupported(Exception):
    """A kustomize feature this renderer does not implement."""


def load_docs(path):
    """Every non-empty YAML document of a file."""
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _group(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def _version(api_version):
    return api_version.split("/")[-1]


def obj_id(obj):
    """(group, kind, namespace, name): the identity kustomize matches on."""
    meta = obj.get("metadata") or {}
    return (_group(obj.get("apiVersion", "")), obj.get("kind"), meta.get("namespace", ""),
            meta.get("name"))


def _check_directives(patch, where):
    if isinstance(patch, dict):
        for k, v in patch.items():
            if isinstance(k, str) and k.startswith("$"):
                raise Unsupported("%s: strategic-merge directive %s" % (where, k))
            _check_directives(v, where)
    elif isinstance(patch, list):
        for v in patch:
            _check_directives(v, where)


def strategic_merge(base, patch, field=None):
    """The strategic merge of patch into base (both left unchanged)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    key = MERGE_KEYS.get(field)
    if (key and isinstance(base, list) and isinstance(patch, list) and
            all(isinstance(i, dict) and key in i for i in base + patch)):
        out = copy.deepcopy(base)
        for item in patch:
            for i, cur in enumerate(out):
                if cur[key] == item[key]:
                    out[i] = strategic_merge(cur, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _matches(obj, target):
    allowed = {"kind", "name", "namespace", "group", "version"}
    if set(target) - allowed:
        raise Unsupported("patch target fields %s" % sorted(set(target) - allowed))
    meta = obj.get("metadata") or {}
    api = obj.get("apiVersion", "")
    checks = {"kind": obj.get("kind"), "name": meta.get("name"),
              "namespace": meta.get("namespace", ""), "group": _group(api),
              "version": _version(api)}
    return all(checks[k] == v for k, v in target.items())


def _apply_patches(objs, entries, root):
    for entry in entries:
        if set(entry) - {"path", "target"} or "path" not in entry:
            raise Unsupported("%s: patch entry %s (only path and target)" % (root, entry))
        path = os.path.join(root, entry["path"])
        for patch in load_docs(path):
            _check_directives(patch, path)
            if "target" in entry:
                hits = [i for i, o in enumerate(objs) if _matches(o, entry["target"])]
            else:
                hits = [i for i, o in enumerate(objs) if obj_id(o) == obj_id(patch)]
            if not hits:
                raise ValueError("%s: patch %s matches no object" % (path, obj_id(patch)))
            for i in hits:
                merged = strategic_merge(objs[i], patch)
                if "target" in entry:  # the patch's own name and namespace are ignored
                    merged["metadata"]["name"] = objs[i]["metadata"]["name"]
                    if "namespace" in objs[i]["metadata"]:
                        merged["metadata"]["namespace"] = objs[i]["metadata"]["namespace"]
                    else:
                        merged["metadata"].pop("namespace", None)
                objs[i] = merged


def _apply_labels(objs, entries, root):
    for entry in entries:
        if set(entry) - {"pairs", "includeSelectors", "includeTemplates"}:
            raise Unsupported("%s: labels entry fields %s" % (root, sorted(entry)))
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise Unsupported("%s: labels with includeSelectors/includeTemplates" % root)
        for obj in objs:
            meta = obj.setdefault("metadata", {})
            labels = meta.get("labels") or {}
            labels.update({str(k): str(v) for k, v in entry["pairs"].items()})
            meta["labels"] = labels


def render(directory):
    """The objects `kubectl kustomize directory` would print, in resource order."""
    path = os.path.join(directory, "kustomization.yaml")
    docs = load_docs(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ValueError("%s: one mapping expected" % path)
    k = docs[0]
    if set(k) - KUSTOMIZATION_FIELDS:
        raise Unsupported("%s: fields %s" % (path, sorted(set(k) - KUSTOMIZATION_FIELDS)))
    if k.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported("%s: kind %s" % (path, k.get("kind")))
    objs = []
    for res in k.get("resources") or []:
        full = os.path.normpath(os.path.join(directory, res))
        if os.path.isdir(full):
            objs.extend(render(full))
        else:
            objs.extend(load_docs(full))
    seen = set()
    for o in objs:
        if obj_id(o) in seen:
            raise ValueError("%s: duplicate object %s" % (directory, obj_id(o)))
        seen.add(obj_id(o))
    _apply_patches(objs, k.get("patches") or [], directory)
    _apply_labels(objs, k.get("labels") or [], directory)
    return objs
