/*  lss_cli — the `lss` command's subcommands. Each takes the arguments after its name
 *  and the loaded config (borrowed), and returns the process exit code. */
#ifndef LSS_CLI_H
#define LSS_CLI_H

#include "lss_config.h"

int lss_cli_tap (int argc, char **argv, const lss_config_t *cfg);
int lss_cli_docs (int argc, char **argv, const lss_config_t *cfg);
int lss_cli_sandbox (int argc, char **argv, const lss_config_t *cfg);
int lss_cli_obj (int argc, char **argv, const lss_config_t *cfg);
int lss_cli_up (int argc, char **argv, const lss_config_t *cfg);

#endif
