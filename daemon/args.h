/*
 * args.h — aoqd's command line and config file (the typed settings of the daemon).
 */
#ifndef AOQD_ARGS_H
#define AOQD_ARGS_H

#include "aoq/aoq.h"

#define AOQD_MAX_MODEL_ARGS 8

typedef struct aoqd_opts {
  struct {
    const char *name, *config;
  } models[AOQD_MAX_MODEL_ARGS];
  int n_models;
  int synthetic;      /* --synthetic: deterministic random weights */
  const char *device; /* --device (default "auto") */
  int kv_pages, page_size, max_seqs, max_batch_tokens;
  const char *endpoint;       /* --endpoint ipc://... (default: wire.h) */
  const char *admin_endpoint; /* --admin-endpoint ipc://... */
  const char *listen;         /* --listen tcp://host:port (needs CURVE) */
  const char *curve_keys;     /* --curve-keys FILE: server public + secret key (Z85) */
  const char *curve_clients;  /* --curve-clients FILE: lines "<public key Z85> <tenant>" */
  const char *conf;           /* --conf FILE: quotas, re-read on SIGHUP */
  const char *pidfile;
  int foreground;
  int batch_invariant; /* --batch-invariant: a row's result never depends on its batch (GPU) */
  int socket_mode;      /* --socket-mode (octal, default 0600) */
  int heartbeat_ms;     /* --heartbeat-ms: ZMTP heartbeat interval (default 1000) */
  const char *http;     /* --http HOST:PORT: OpenAI-compatible HTTP + /metrics (http.h) */
  const char *api_keys; /* --api-keys FILE: lines "<key> <tenant>" for --http */
} aoqd_opts;

/* Parses argv. Returns 0 to run, 1 after printing --help/--version (exit 0), 2 on a usage error
 * (message printed to stderr). */
int aoqd_args_parse(int argc, char **argv, aoqd_opts *o);

#endif
