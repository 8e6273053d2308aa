/*  lss obj get / delete — read objects (one, or a list paged through to the end) and
 *  delete one.
 *
 *  get prints, like kubectl, a table (NAME, PHASE from status.phase, AGE from
 *  creationTimestamp; NAMESPACE first with -A), or -o json (the object, or a List
 *  {apiVersion: v1, kind: List, metadata: {resourceVersion}, items}), -o yaml (the same
 *  as YAML) or -o name (kind/name lines). A list reads every page; its resourceVersion is
 *  the first page's, so `watch --from` it misses nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_obj.h"
#include "lss_util.h"
#include "obj.h"

typedef enum { S_OUT_TABLE, S_OUT_JSON, S_OUT_YAML, S_OUT_NAME } s_output_t;

static int s_unknown_kind (const char *verb, const char *text)
{
    fprintf (stderr,
             "lss obj %s: unknown kind \"%s\" (sandbox|sb, warmpool|wp, warmpod|wpod, "
             "sandboxprofile|sbp, runtimeenvironment|rte, pod|po)\n",
             verb, text);
    return OBJ_EXIT_USAGE;
}

static void s_not_found (const char *verb, const char *kind, const char *ns, const char *name)
{
    if (*ns)
        fprintf (stderr, "lss obj %s: %s \"%s\" not found in namespace \"%s\"\n", verb,
                 obj_kind_lower (kind), name, ns);
    else
        fprintf (stderr, "lss obj %s: %s \"%s\" not found\n", verb, obj_kind_lower (kind),
                 name);
}

/* kubectl-like age: 42s, 7m, 5h, 3d. */
static void s_age (const json_t *obj, char *out, size_t size)
{
    int64_t created;
    const char *ts = lss_obj_str (obj, "metadata.creationTimestamp");
    if (!ts || lss_time_parse_rfc3339 (ts, &created)) {
        lss_fmt (out, size, "<unknown>");
        return;
    }
    int64_t s = (lss_time_now_ms () - created) / 1000;
    if (s < 0)
        s = 0;
    if (s < 120)
        lss_fmt (out, size, "%llds", (long long)s);
    else if (s < 2 * 3600)
        lss_fmt (out, size, "%lldm", (long long)(s / 60));
    else if (s < 2 * 86400)
        lss_fmt (out, size, "%lldh", (long long)(s / 3600));
    else
        lss_fmt (out, size, "%lldd", (long long)(s / 86400));
}

static int s_width (json_t *items, const char *path, int min)
{
    int w = min;
    size_t i;
    json_t *item;
    json_array_foreach (items, i, item)
    {
        const char *v = lss_obj_str (item, path);
        if (v && (int)strlen (v) > w)
            w = (int)strlen (v);
    }
    return w;
}

static void s_table (json_t *items, bool with_ns)
{
    int wns = s_width (items, "metadata.namespace", 9);
    int wname = s_width (items, "metadata.name", 4);
    int wphase = s_width (items, "status.phase", 6);
    if (with_ns)
        printf ("%-*s   ", wns, "NAMESPACE");
    printf ("%-*s   %-*s   %s\n", wname, "NAME", wphase, "PHASE", "AGE");
    size_t i;
    json_t *item;
    json_array_foreach (items, i, item)
    {
        char age[32];
        s_age (item, age, sizeof age);
        const char *phase = lss_obj_str (item, "status.phase");
        if (with_ns)
            printf ("%-*s   ", wns, lss_obj_str (item, "metadata.namespace") ?: "");
        printf ("%-*s   %-*s   %s\n", wname, lss_obj_str (item, "metadata.name") ?: "", wphase,
                phase ? phase : "<none>", age);
    }
}

static int s_print (s_output_t out, json_t *value, json_t *items, bool with_ns)
{
    if (out == S_OUT_JSON)
        obj_print_json (value, true);
    else if (out == S_OUT_YAML) {
        char *text = obj_yaml_dump (value);
        if (!text) {
            fprintf (stderr, "lss obj get: cannot write YAML\n");
            return OBJ_EXIT_FAIL;
        }
        fputs (text, stdout);
        free (text);
    } else if (out == S_OUT_NAME) {
        size_t i;
        json_t *item;
        json_array_foreach (items, i, item)
        {
            printf ("%s/%s\n",
                    obj_kind_lower (json_string_value (json_object_get (item, "kind"))),
                    lss_obj_str (item, "metadata.name") ?: "");
        }
    } else
        s_table (items, with_ns);
    fflush (stdout);
    return OBJ_EXIT_OK;
}

/* Every page of a list into one List object. */
static int s_list_all (lss_store_t *st, const char *kind, const char *ns, const char *selector,
                       json_t **out)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *items = json_array ();
    char *token = NULL, *rv = NULL;
    int rc;
    do {
        json_t *page = NULL;
        rc = lss_store_list (st, kind, ns, selector, 0, token, &page, err, sizeof err);
        free (token);
        token = NULL;
        if (rc != LSS_STORE_OK)
            break;
        json_array_extend (items, json_object_get (page, "items"));
        if (!rv)
            rv = strdup (lss_obj_str (page, "metadata.resourceVersion") ?: "");
        const char *cont = lss_obj_str (page, "metadata.continue");
        token = cont && *cont ? strdup (cont) : NULL;
        json_decref (page);
    } while (token);
    if (rc != LSS_STORE_OK) {
        fprintf (stderr, "lss obj get: %s\n", err);
        json_decref (items);
        free (rv);
        return obj_exit_code (rc);
    }
    *out = json_pack ("{s:s, s:s, s:{s:s}, s:o}", "apiVersion", "v1", "kind", "List",
                      "metadata", "resourceVersion", rv ? rv : "", "items", items);
    free (rv);
    return *out ? OBJ_EXIT_OK : OBJ_EXIT_FAIL;
}

int obj_get (int argc, char **argv, obj_ctx_t *ctx)
{
    static const struct option opts[] = {{"namespace", required_argument, NULL, 'n'},
                                         {"all-namespaces", no_argument, NULL, 'A'},
                                         {"selector", required_argument, NULL, 'l'},
                                         {"output", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *ns_flag = NULL, *selector = NULL;
    bool all = false;
    s_output_t output = S_OUT_TABLE;
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "n:Al:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            ns_flag = optarg;
            break;
        case 'A':
            all = true;
            break;
        case 'l':
            selector = optarg;
            break;
        case 'o':
            if (strcmp (optarg, "json") == 0)
                output = S_OUT_JSON;
            else if (strcmp (optarg, "yaml") == 0)
                output = S_OUT_YAML;
            else if (strcmp (optarg, "name") == 0)
                output = S_OUT_NAME;
            else {
                fprintf (stderr, "lss obj get: -o is json, yaml or name, not '%s'\n", optarg);
                return OBJ_EXIT_USAGE;
            }
            break;
        default:
            return OBJ_EXIT_USAGE;
        }
    }
    int rest = argc - (optind - 1);
    char **pos = argv + (optind - 1);
    if (rest < 1 || rest > 2) {
        fprintf (stderr, "usage: lss obj get KIND [NAME] [-n NS|-A] [-l SELECTOR] "
                         "[-o json|yaml|name]\n");
        return OBJ_EXIT_USAGE;
    }
    const char *kind = obj_kind_resolve (pos[0]);
    if (!kind)
        return s_unknown_kind ("get", pos[0]);
    const char *name = rest == 2 ? pos[1] : NULL;
    if (name && (selector || all)) {
        fprintf (stderr, "lss obj get: a NAME does not go with %s\n", selector ? "-l" : "-A");
        return OBJ_EXIT_USAGE;
    }
    if (all && ns_flag) {
        fprintf (stderr, "lss obj get: -n does not go with -A\n");
        return OBJ_EXIT_USAGE;
    }
    const char *ns = obj_namespace ("get", kind, ns_flag);
    if (!ns)
        return OBJ_EXIT_USAGE;
    lss_store_t *st = obj_store_open (ctx);
    if (!st)
        return OBJ_EXIT_FAIL;
    int rc;
    if (name) {
        char err[LSS_STORE_ERR_SIZE] = "";
        json_t *obj = NULL;
        int src = lss_store_get (st, kind, ns, name, &obj, err, sizeof err);
        if (src == LSS_STORE_NOT_FOUND) {
            s_not_found ("get", kind, ns, name);
            rc = OBJ_EXIT_FAIL;
        } else if (src != LSS_STORE_OK) {
            fprintf (stderr, "lss obj get: %s\n", err);
            rc = obj_exit_code (src);
        } else {
            json_t *items = json_pack ("[O]", obj);
            rc = s_print (output, obj, items, false);
            json_decref (items);
        }
        json_decref (obj);
    } else {
        json_t *list = NULL;
        rc = s_list_all (st, kind, all ? NULL : ns, selector, &list);
        if (rc == OBJ_EXIT_OK) {
            json_t *items = json_object_get (list, "items");
            if (output == S_OUT_TABLE && json_array_size (items) == 0) {
                if (all || !*ns)
                    fprintf (stderr, "No resources found\n");
                else
                    fprintf (stderr, "No resources found in %s namespace.\n", ns);
            } else
                rc = s_print (output, list, items, all);
        }
        json_decref (list);
    }
    lss_store_destroy (&st);
    return rc;
}

int obj_delete (int argc, char **argv, obj_ctx_t *ctx)
{
    static const struct option opts[] = {{"namespace", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    const char *ns_flag = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "n:", opts, NULL)) != -1) {
        if (c != 'n')
            return OBJ_EXIT_USAGE;
        ns_flag = optarg;
    }
    int rest = argc - (optind - 1);
    char **pos = argv + (optind - 1);
    if (rest != 2) {
        fprintf (stderr, "usage: lss obj delete KIND NAME [-n NS]\n");
        return OBJ_EXIT_USAGE;
    }
    const char *kind = obj_kind_resolve (pos[0]);
    if (!kind)
        return s_unknown_kind ("delete", pos[0]);
    const char *ns = obj_namespace ("delete", kind, ns_flag);
    if (!ns)
        return OBJ_EXIT_USAGE;
    lss_store_t *st = obj_store_open (ctx);
    if (!st)
        return OBJ_EXIT_FAIL;
    char err[LSS_STORE_ERR_SIZE] = "";
    int src = lss_store_delete (st, kind, ns, pos[1], NULL, err, sizeof err);
    lss_store_destroy (&st);
    if (src == LSS_STORE_NOT_FOUND) {
        s_not_found ("delete", kind, ns, pos[1]);
        return OBJ_EXIT_FAIL;
    }
    if (src != LSS_STORE_OK) {
        fprintf (stderr, "lss obj delete: %s\n", err);
        return obj_exit_code (src);
    }
    printf ("%s/%s deleted\n", obj_kind_lower (kind), pos[1]);
    return OBJ_EXIT_OK;
}
