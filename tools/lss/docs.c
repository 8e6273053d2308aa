/*  lss docs — prints the reference documents generated from declarations:
 *  `lss docs bus` (docs/bus.md, from common/proto/lss_messages.def). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_cli.h"
#include "lss_proto.h"

int lss_cli_docs (int argc, char **argv, const lss_config_t *cfg)
{
    (void)cfg;
    if (argc == 1 && strcmp (argv[0], "bus") == 0) {
        char *md = lss_proto_doc_markdown ();
        if (!md)
            return 1;
        fputs (md, stdout);
        free (md);
        return 0;
    }
    fprintf (stderr, "usage: lss docs bus\n");
    return argc == 1 && strcmp (argv[0], "--help") == 0 ? 0 : 2;
}
