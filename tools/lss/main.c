/*  lss — the LLMSafeSpace command line: tap the bus, print generated docs, and (as the
 *  services come to exist) run and administer the system.
 *
 *  Usage: lss [--config FILE] COMMAND [ARGS]   (or LSS_CONFIG=FILE)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_cli.h"
#include "lss_log.h"

static const struct {
    const char *name;
    int (*run) (int argc, char **argv, const lss_config_t *cfg);
    const char *help;
} s_commands[] = {
    {"tap", lss_cli_tap, "print every message of bus publishers as JSON lines"},
    {"docs", lss_cli_docs, "print generated reference documents (bus)"},
    {"sandbox", lss_cli_sandbox, "run, exec in, list and remove local sandboxes by hand"},
    {"obj", lss_cli_obj, "apply, get, delete, watch and wait for objects in the store"},
    {"up", lss_cli_up, "run the whole system on this machine (PostgreSQL, Redis, services)"},
};

static void s_usage (FILE *out)
{
    fprintf (out, "usage: lss [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf (out, "  %-8s %s\n", s_commands[i].name, s_commands[i].help);
    fprintf (out, "\n`lss COMMAND --help` describes a command.\n");
}

int main (int argc, char **argv)
{
    const char *config_path = getenv ("LSS_CONFIG");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp (argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
            /* programs started by a command (lss up) read the same file */
            setenv ("LSS_CONFIG", config_path, 1);
        } else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
            s_usage (stdout);
            return 0;
        } else {
            fprintf (stderr, "lss: unknown option '%s'\n", argv[i]);
            s_usage (stderr);
            return 2;
        }
    }
    if (i >= argc) {
        s_usage (stderr);
        return 2;
    }
    lss_log_init ("lss", LSS_LOG_WARN);
    lss_config_t *cfg = lss_config_new (lss_settings, lss_settings_count);
    char err[512];
    if (!cfg || lss_config_load (cfg, config_path, err, sizeof err)) {
        fprintf (stderr, "lss: configuration error: %s\n", cfg ? err : "bad built-in defaults");
        lss_config_destroy (&cfg);
        return 2;
    }
    const char *lvl = lss_config_str (cfg, "log.level");
    lss_log_level_t level;
    if (lss_log_parse_level (lvl, &level) == 0 && level > LSS_LOG_WARN)
        lss_log_set_level (level);
    int rc = -1;
    for (size_t c = 0; c < sizeof s_commands / sizeof s_commands[0]; c++)
        if (strcmp (argv[i], s_commands[c].name) == 0)
            rc = s_commands[c].run (argc - i - 1, argv + i + 1, cfg);
    if (rc == -1) {
        fprintf (stderr, "lss: unknown command '%s'\n", argv[i]);
        s_usage (stderr);
        rc = 2;
    }
    lss_config_destroy (&cfg);
    return rc;
}
