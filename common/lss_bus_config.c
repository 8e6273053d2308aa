/*  lss_bus_config — bus socket options from the bus.* config keys. Kept apart from
 *  lss_bus.c so programs that do not read the config (lss-agent) do not link it. */
#include "lss_bus.h"

void lss_bus_opts_from_config (const lss_config_t *cfg, lss_bus_opts_t *opts)
{
    opts->sndhwm = (int)lss_config_int (cfg, "bus.sndhwm");
    opts->rcvhwm = (int)lss_config_int (cfg, "bus.rcvhwm");
    opts->linger_ms = (int)lss_config_int (cfg, "bus.linger");
    opts->reconnect_ivl_ms = (int)lss_config_int (cfg, "bus.reconnect_ivl");
    opts->reconnect_ivl_max_ms = (int)lss_config_int (cfg, "bus.reconnect_ivl_max");
    opts->heartbeat_ivl_ms = (int)lss_config_int (cfg, "bus.heartbeat_ivl");
    opts->heartbeat_timeout_ms = (int)lss_config_int (cfg, "bus.heartbeat_timeout");
    opts->max_message = lss_config_int (cfg, "bus.max_message");
    opts->resolve_interval_ms = (int)lss_config_int (cfg, "bus.resolve_interval");
}
