/*  lss obj apply — create or update the objects of a YAML/JSON file, like kubectl apply.
 *
 *  Each document is read from the store first: absent → create; present → the stored
 *  object with the document's spec, labels and annotations (and finalizers and
 *  ownerReferences when the document has them) is written back guarded by the stored
 *  resourceVersion, retried from a fresh read on a conflict — unless the document
 *  carries its own metadata.resourceVersion, which is then the precondition. The store
 *  bumps generation only when spec changed and writes nothing when nothing changed.
 *  status in the document is ignored (status subresource) unless --status, which
 *  writes only the documents' status, to objects that must exist. Documents are applied
 *  in order; a failed one is reported and the others still run; the exit code is the
 *  worst one (2 invalid > 1 failed > 0).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_obj.h"
#include "lss_util.h"
#include "obj.h"

#define S_CONFLICT_RETRIES 5

/* Reads all of path ("-" = stdin) into a NUL-terminated buffer; caller frees. */
static char *s_read_input (const char *path, size_t *len)
{
    FILE *f = strcmp (path, "-") == 0 ? stdin : fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "lss obj apply: cannot open %s: %m\n", path);
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc (cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap > OBJ_INPUT_MAX_BYTES) {
                fprintf (stderr, "lss obj apply: %s is larger than %d bytes\n", path,
                         OBJ_INPUT_MAX_BYTES);
                free (buf);
                buf = NULL;
                break;
            }
            char *bigger = realloc (buf, cap * 2 + 1);
            if (!bigger) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t r = fread (buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (buf && ferror (f)) {
        fprintf (stderr, "lss obj apply: cannot read %s\n", path);
        free (buf);
        buf = NULL;
    }
    if (f != stdin)
        fclose (f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Replaces (or removes, when the document lacks it) key of dst with src's. */
static void s_take (json_t *dst, const json_t *src, const char *key, bool keep_if_absent)
{
    json_t *v = json_object_get (src, key);
    if (v)
        json_object_set_new (dst, key, json_deep_copy (v));
    else if (!keep_if_absent)
        json_object_del (dst, key);
}

/* Checks a document and fills in its namespace. Returns 0 or OBJ_EXIT_USAGE (printed). */
static int s_prepare (json_t *doc, size_t index, const char *ns_flag)
{
    if (!json_is_object (doc)) {
        fprintf (stderr, "lss obj apply: document %zu: not a mapping (an object)\n", index + 1);
        return OBJ_EXIT_USAGE;
    }
    const char *kind = json_string_value (json_object_get (doc, "kind"));
    if (!kind || lss_store_kind_scope (kind) < 0) {
        fprintf (stderr, "lss obj apply: document %zu: kind: %s%s%s\n", index + 1,
                 kind ? "unknown kind \"" : "required", kind ? kind : "", kind ? "\"" : "");
        return OBJ_EXIT_USAGE;
    }
    json_t *meta = json_object_get (doc, "metadata");
    const char *name = json_string_value (json_object_get (meta, "name"));
    if (!json_is_object (meta) || !name || !*name) {
        fprintf (stderr, "lss obj apply: document %zu: metadata.name: required\n", index + 1);
        return OBJ_EXIT_USAGE;
    }
    json_t *ns_json = json_object_get (meta, "namespace");
    if (ns_json && !json_is_string (ns_json)) {
        fprintf (stderr, "lss obj apply: %s/%s: metadata.namespace: must be a string\n",
                 obj_kind_lower (kind), name);
        return OBJ_EXIT_USAGE;
    }
    const char *ns = json_string_value (ns_json);
    if (ns && ns_flag && strcmp (ns, ns_flag) != 0) {
        fprintf (stderr,
                 "lss obj apply: %s/%s: metadata.namespace \"%s\" does not match -n \"%s\"\n",
                 obj_kind_lower (kind), name, ns, ns_flag);
        return OBJ_EXIT_USAGE;
    }
    if (!ns && lss_store_kind_scope (kind) == 0)
        json_object_set_new (meta, "namespace",
                             json_string (ns_flag ? ns_flag : OBJ_DEFAULT_NS));
    return 0;
}

static const char *s_name (const json_t *doc)
{
    const char *name = lss_obj_str (doc, "metadata.name");
    return name ? name : "?";
}

static int s_fail (const json_t *doc, int rc, const char *err)
{
    const char *kind = json_string_value (json_object_get (doc, "kind"));
    const char *name = s_name (doc);
    fprintf (stderr, "lss obj apply: %s/%s: %s\n", obj_kind_lower (kind), name, err);
    return obj_exit_code (rc);
}

static int s_apply_status (lss_store_t *st, const json_t *doc)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    const char *kind = json_string_value (json_object_get (doc, "kind"));
    json_t *meta = json_object_get (doc, "metadata");
    json_t *status = json_object_get (doc, "status");
    if (!json_is_object (status))
        return s_fail (doc, LSS_STORE_INVALID, "status: an object is required with --status");
    int rc = LSS_STORE_CONFLICT;
    for (int attempt = 0; attempt < S_CONFLICT_RETRIES && rc == LSS_STORE_CONFLICT; attempt++) {
        json_t *cur = NULL, *out = NULL;
        rc = lss_store_get (st, kind, json_string_value (json_object_get (meta, "namespace")),
                            json_string_value (json_object_get (meta, "name")), &cur, err,
                            sizeof err);
        if (rc != LSS_STORE_OK)
            break;
        json_t *next = json_deep_copy (cur);
        json_object_set_new (next, "status", json_deep_copy (status));
        rc = lss_store_update_status (st, next, &out, err, sizeof err);
        if (rc == LSS_STORE_OK)
            printf ("%s/%s status %s\n", obj_kind_lower (kind), s_name (doc),
                    json_equal (json_object_get (cur, "status"), status) ? "unchanged"
                                                                         : "updated");
        json_decref (cur);
        json_decref (next);
        json_decref (out);
    }
    return rc == LSS_STORE_OK ? OBJ_EXIT_OK : s_fail (doc, rc, err);
}

static int s_apply_one (lss_store_t *st, const json_t *doc)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    const char *kind = json_string_value (json_object_get (doc, "kind"));
    json_t *meta = json_object_get (doc, "metadata");
    const char *ns = json_string_value (json_object_get (meta, "namespace"));
    const char *name = json_string_value (json_object_get (meta, "name"));
    const char *want_rv = json_string_value (json_object_get (meta, "resourceVersion"));
    int rc = LSS_STORE_CONFLICT;
    for (int attempt = 0; attempt < S_CONFLICT_RETRIES && rc == LSS_STORE_CONFLICT; attempt++) {
        json_t *cur = NULL, *out = NULL;
        rc = lss_store_get (st, kind, ns ? ns : "", name, &cur, err, sizeof err);
        if (rc == LSS_STORE_NOT_FOUND) {
            rc = lss_store_create (st, doc, NULL, err, sizeof err);
            if (rc == LSS_STORE_OK)
                printf ("%s/%s created\n", obj_kind_lower (kind), name);
            continue; /* a CONFLICT here (created meanwhile) goes round again */
        }
        if (rc != LSS_STORE_OK)
            break;
        json_t *next = json_deep_copy (cur);
        json_t *nmeta = json_object_get (next, "metadata");
        s_take (next, doc, "spec", false);
        s_take (nmeta, meta, "labels", false);
        s_take (nmeta, meta, "annotations", false);
        s_take (nmeta, meta, "finalizers", true);
        s_take (nmeta, meta, "ownerReferences", true);
        if (want_rv)
            json_object_set_new (nmeta, "resourceVersion", json_string (want_rv));
        rc = lss_store_update (st, next, &out, err, sizeof err);
        if (rc == LSS_STORE_OK) {
            const char *before = lss_obj_str (cur, "metadata.resourceVersion");
            const char *after = out ? lss_obj_str (out, "metadata.resourceVersion") : NULL;
            printf ("%s/%s %s\n", obj_kind_lower (kind), name,
                    !out ? "deleted (last finalizer removed)"
                    : before && after && strcmp (before, after) == 0 ? "unchanged"
                                                                     : "configured");
        }
        json_decref (cur);
        json_decref (next);
        json_decref (out);
        if (want_rv)
            break; /* the document's own precondition: no retry */
    }
    fflush (stdout);
    return rc == LSS_STORE_OK ? OBJ_EXIT_OK : s_fail (doc, rc, err);
}

int obj_apply (int argc, char **argv, obj_ctx_t *ctx)
{
    static const struct option opts[] = {{"filename", required_argument, NULL, 'f'},
                                         {"namespace", required_argument, NULL, 'n'},
                                         {"status", no_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *ns = NULL;
    bool status = false;
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "f:n:", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            path = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case 's':
            status = true;
            break;
        default:
            return OBJ_EXIT_USAGE;
        }
    }
    if (!path || optind - 1 < argc) {
        fprintf (stderr, "usage: lss obj apply -f FILE|- [--status] [-n NS]\n");
        return OBJ_EXIT_USAGE;
    }
    size_t len = 0;
    char *text = s_read_input (path, &len);
    if (!text)
        return OBJ_EXIT_FAIL;
    char err[OBJ_ERR_SIZE] = "";
    json_t *docs = NULL;
    int prc = obj_yaml_parse (text, len, &docs, err, sizeof err);
    free (text);
    if (prc) {
        fprintf (stderr, "lss obj apply: %s: %s\n", path, err);
        return OBJ_EXIT_USAGE;
    }
    int worst = OBJ_EXIT_OK;
    size_t i;
    json_t *doc;
    json_array_foreach (docs, i, doc)
    {
        int rc = s_prepare (doc, i, ns);
        if (rc > worst)
            worst = rc;
    }
    if (worst == OBJ_EXIT_OK && json_array_size (docs) == 0) {
        fprintf (stderr, "lss obj apply: %s: no objects\n", path);
        worst = OBJ_EXIT_USAGE;
    }
    lss_store_t *st = worst == OBJ_EXIT_OK ? obj_store_open (ctx) : NULL;
    if (worst == OBJ_EXIT_OK && !st)
        worst = OBJ_EXIT_FAIL;
    if (st) {
        json_array_foreach (docs, i, doc)
        {
            int rc = status ? s_apply_status (st, doc) : s_apply_one (st, doc);
            if (rc > worst)
                worst = rc;
        }
    }
    lss_store_destroy (&st);
    json_decref (docs);
    return worst;
}
