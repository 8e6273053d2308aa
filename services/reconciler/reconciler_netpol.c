/*  reconciler_netpol — the NetworkPolicy of one sandbox. See reconciler_netpol.h. */
#include "reconciler_netpol.h"

#include <string.h>

#include "lss_obj.h"
#include "lss_store.h"
#include "lss_util.h"

#define S_DOMAINS_MAX 2048 /* bytes of the egress-domains annotation */
#define S_PORTS_MAX   64   /* distinct ports of a grant */

static const char *const s_closed[] = {"10.0.0.0/8",     "172.16.0.0/12", "192.168.0.0/16",
                                       "169.254.0.0/16", "127.0.0.0/8",   "100.64.0.0/10"};

/*  The ports every grant names (an array; empty = any port), or NULL on a bad one. */
static json_t *s_ports (const json_t *egress, bool *any, char *err, size_t err_size)
{
    json_t *ports = json_array ();
    size_t i;
    json_t *rule;
    *any = false;
    json_array_foreach (egress, i, rule)
    {
        json_t *list = json_object_get (rule, "ports");
        if (!json_is_object (rule) || (list && !json_is_array (list))) {
            lss_errf (err, err_size,
                      "spec.networkAccess.egress[%zu]: must be an object, ports a list", i);
            json_decref (ports);
            return NULL;
        }
        if (!list || json_array_size (list) == 0) {
            *any = true; /* a grant without ports opens every port */
            continue;
        }
        size_t j;
        json_t *p;
        json_array_foreach (list, j, p)
        {
            json_int_t port = json_integer_value (json_object_get (p, "port"));
            const char *proto = json_string_value (json_object_get (p, "protocol"));
            if (!proto)
                proto = "TCP";
            if (port < 1 || port > 65535 ||
                (strcasecmp (proto, "TCP") != 0 && strcasecmp (proto, "UDP") != 0)) {
                lss_errf (err, err_size,
                          "spec.networkAccess.egress[%zu].ports[%zu]: port 1..65535, "
                          "protocol TCP or UDP",
                          i, j);
                json_decref (ports);
                return NULL;
            }
            if (json_array_size (ports) >= S_PORTS_MAX) {
                lss_errf (err, err_size, "spec.networkAccess.egress: more than %d ports",
                          S_PORTS_MAX);
                json_decref (ports);
                return NULL;
            }
            json_array_append_new (ports,
                                   json_pack ("{s:s, s:I}", "protocol",
                                              strcasecmp (proto, "UDP") == 0 ? "UDP" : "TCP",
                                              "port", port));
        }
    }
    return ports;
}

/*  The grants' domains, comma-separated (cut at S_DOMAINS_MAX). */
static void s_domains (const json_t *egress, char *out, size_t size)
{
    out[0] = '\0';
    size_t i, n = 0;
    json_t *rule;
    json_array_foreach (egress, i, rule)
    {
        const char *d = json_string_value (json_object_get (rule, "domain"));
        if (!d || !*d || strpbrk (d, ", \t\r\n"))
            continue;
        int w = snprintf (out + n, size - n, "%s%s", n ? "," : "", d);
        if (w < 0 || (size_t)w >= size - n) {
            out[n] = '\0';
            return;
        }
        n += (size_t)w;
    }
}

static json_t *s_egress_rules (const json_t *egress, char *err, size_t err_size)
{
    bool any;
    json_t *ports = s_ports (egress, &any, err, err_size);
    if (!ports)
        return NULL;
    json_t *except = json_array ();
    for (size_t i = 0; i < sizeof s_closed / sizeof s_closed[0]; i++)
        json_array_append_new (except, json_string (s_closed[i]));
    json_t *pub = json_pack ("{s:[{s:{s:s, s:o}}]}", "to", "ipBlock", "cidr", "0.0.0.0/0",
                             "except", except);
    if (!any && json_array_size (ports))
        json_object_set_new (pub, "ports", ports);
    else
        json_decref (ports);
    /* DNS: to any resolver the cluster uses (kube-dns lives on a private address) */
    json_t *dns = json_pack ("{s:[{s:s, s:i}, {s:s, s:i}]}", "ports", "protocol", "UDP", "port",
                             53, "protocol", "TCP", "port", 53);
    return json_pack ("[o, o]", dns, pub);
}

json_t *reconciler_netpol_for (const json_t *sandbox, bool egress, const char *executor_ns,
                               char *err, size_t err_size)
{
    if (executor_ns && *executor_ns &&
        lss_store_check_name ("reconciler.executor_namespace", executor_ns, err, err_size))
        return NULL;
    const char *name = lss_obj_str (sandbox, "metadata.name");
    const char *ns = lss_obj_str (sandbox, "metadata.namespace");
    if (!name || !ns) {
        lss_errf (err, err_size, "sandbox without name or namespace");
        return NULL;
    }
    json_t *grants = lss_obj_at (sandbox, "spec.networkAccess.egress");
    json_t *rules = egress && json_is_array (grants) ? s_egress_rules (grants, err, err_size)
                                                     : json_array ();
    if (!rules)
        return NULL;
    char domains[S_DOMAINS_MAX] = "";
    if (egress && json_is_array (grants))
        s_domains (grants, domains, sizeof domains);
    json_t *np = json_pack (
        "{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s}, s:[o]},"
        " s:{s:{s:{s:s}}, s:[s, s], s:[{s:[{s:{s:{s:s}}}], s:[{s:s, s:i}]}], s:o}}",
        "apiVersion", "networking.k8s.io/v1", "kind", "NetworkPolicy", "metadata", "name", name,
        "namespace", ns, "labels", LSS_LABEL_PART_OF, "llmsafespace", LSS_LABEL_COMPONENT,
        "sandbox", LSS_LABEL_SANDBOX, name, "annotations", RECONCILER_ANN_DOMAINS, domains,
        "ownerReferences", lss_obj_owner_ref (sandbox), "spec", "podSelector", "matchLabels",
        LSS_LABEL_SANDBOX, name, "policyTypes", "Ingress", "Egress", "ingress", "from",
        "podSelector", "matchLabels", "app.kubernetes.io/name", RECONCILER_EXECUTOR_APP,
        "ports", "protocol", "TCP", "port", RECONCILER_AGENT_PORT, "egress", rules);
    json_t *from = json_array_get (
        json_object_get (json_array_get (lss_obj_at (np, "spec.ingress"), 0), "from"), 0);
    if (np && executor_ns && *executor_ns)
        json_object_set_new (
            from, "namespaceSelector",
            json_pack ("{s:{s:s}}", "matchLabels", "kubernetes.io/metadata.name", executor_ns));
    if (!np)
        lss_errf (err, err_size, "out of memory building the NetworkPolicy");
    return np;
}
