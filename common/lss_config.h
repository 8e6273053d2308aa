/*  lss_config — typed configuration from one YAML file plus LSS_* environment overrides.
 *
 *  A table of lss_config_spec_t declares every key (dotted name, type, default, bounds,
 *  flags, one line of doc). YAML nesting maps onto the dots: `bus: {pub: x}` is key
 *  "bus.pub". The environment variable of a key is LSS_ + the key upper-cased with '.'
 *  and '-' turned into '_' (bus.pub → LSS_BUS_PUB); it wins over the file.
 *  Unknown keys, wrong types and out-of-range values are errors naming the key.
 *  Types: STR, INT (int64), BOOL (true/false/yes/no/on/off/1/0), SIZE (bytes; accepts
 *  suffixes K, Ki, M, Mi, G, Gi), DURATION (milliseconds; accepts ms, s, m, h; bare = ms).
 *  min/max bound INT, SIZE and DURATION (and the length of STR when max > 0).
 */
#ifndef LSS_CONFIG_H
#define LSS_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LSS_CFG_STR,
    LSS_CFG_INT,
    LSS_CFG_BOOL,
    LSS_CFG_SIZE,
    LSS_CFG_DURATION,
} lss_config_type_t;

#define LSS_CFG_SECRET 0x1 /* masked when logged or dumped */

typedef struct {
    const char *key; /* dotted name, e.g. "watcher.admin_listen" */
    lss_config_type_t type;
    const char *def;  /* default, as text in the key's syntax */
    int64_t min, max; /* bounds (see above) */
    unsigned flags;
    const char *doc;
} lss_config_spec_t;

typedef struct _lss_config_t lss_config_t;

/*  Creates a config over a spec table (borrowed; must outlive the config), holding the
 *  defaults. Returns NULL if a default does not parse or violates its bounds. */
lss_config_t *lss_config_new (const lss_config_spec_t *spec, size_t count);
void lss_config_destroy (lss_config_t **self_p);

/*  Loads path (NULL = no file) then the environment. On error returns -1 and writes a
 *  message naming the key (and file line where known) into err. */
int lss_config_load (lss_config_t *self, const char *path, char *err, size_t err_size);
/*  Sets one key from text, as the environment would (tests, CLI flags). */
int lss_config_set (lss_config_t *self, const char *key, const char *value, char *err,
                    size_t err_size);

/*  Typed getters. Asking for an undeclared key or the wrong type is a programmer
 *  error (assert). Returned strings are borrowed from the config. */
const char *lss_config_str (const lss_config_t *self, const char *key);
int64_t lss_config_int (const lss_config_t *self, const char *key);
bool lss_config_bool (const lss_config_t *self, const char *key);

/*  The effective config as a JSON object keyed by dotted name (caller owns); secrets
 *  are "***" when mask is true. */
json_t *lss_config_to_json (const lss_config_t *self, bool mask);
/*  Logs the effective config (masked) at info level. */
void lss_config_log (const lss_config_t *self);

/*  The system-wide table of every key LLMSafeSpace knows (lss_settings.c). */
extern const lss_config_spec_t lss_settings[];
extern const size_t lss_settings_count;

#endif
