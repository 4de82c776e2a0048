/* args.c — aoqd command line (args.h). */
#include "daemon/args.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: aoqd [options]\n"
    "  --model NAME           preset (tiny, llama3.1-8b) or HF directory; repeatable\n"
    "  --config CFG           format of the preceding --model (bf16, int8wo, mxfp8, ...)\n"
    "  --synthetic            deterministic random weights (no checkpoint needed)\n"
    "  --device DEV           auto (default), cpu, cpu:N, cuda:N, hip:N, xpu:N\n"
    "  --kv-pages N           KV-cache pages per model (default: the model's)\n"
    "  --page-size N          tokens per KV page (default 16)\n"
    "  --max-seqs N           concurrent sequences per model (default 64)\n"
    "  --max-batch-tokens N   tokens per step (default 512)\n"
    "  --endpoint EP          client endpoint (default ipc://$XDG_RUNTIME_DIR/aoq/aoqd.sock\n"
    "                         or ipc:///tmp/aoq-$UID/aoqd.sock)\n"
    "  --admin-endpoint EP    admin endpoint (default: aoqd-admin.sock beside it)\n"
    "  --socket-mode OCTAL    permissions of the ipc socket files (default 600)\n"
    "  --listen tcp://H:P     also serve TCP clients; needs --curve-keys and --curve-clients\n"
    "  --curve-keys FILE      server key pair: public and secret key, Z85, one per line\n"
    "  --curve-clients FILE   allowed clients: '<public key Z85> <tenant>' per line\n"
    "  --conf FILE            settings file (quota lines), re-read on SIGHUP\n"
    "  --heartbeat-ms N       heartbeat interval for dead-peer detection (default 1000)\n"
    "  --http HOST:PORT       serve the OpenAI-compatible HTTP API and /metrics (off by default)\n"
    "  --api-keys FILE        HTTP API keys: '<key> <tenant>' per line (default: no key, tenant "
    "http)\n"
    "  --pidfile FILE         write the daemon's pid\n"
    "  --foreground           do not detach\n"
    "  --batch-invariant      GPU kernels chosen without regard to the batch: every sequence gets\n"
    "                         the tokens it would get alone (slower past batch 8 and in prefill)\n"
    "  --help, --version\n"
    "Signals: SIGTERM drains then exits; SIGHUP re-reads --conf.\n";

static int int_arg(const char *name, const char *v, int lo, int hi, int base, int *out) {
  char *end;
  long x = strtol(v, &end, base);
  if (!v[0] || *end || x < lo || x > hi) {
    fprintf(stderr, "aoqd: %s expects an integer in %d..%d, got '%s'\n", name, lo, hi, v);
    return 2;
  }
  *out = (int)x;
  return 0;
}

int aoqd_args_parse(int argc, char **argv, aoqd_opts *o) {
  enum {
    MODEL = 256,
    CONFIG,
    SYN,
    DEVICE,
    KVP,
    PSZ,
    MSEQ,
    MBT,
    EP,
    AEP,
    SMODE,
    LISTEN,
    CKEYS,
    CCLI,
    CONF,
    HB,
    PID,
    FG,
    HELP,
    VERSION,
    HTTP,
    APIKEYS,
    BINV
  };
  static const struct option opts[] = {{"model", required_argument, 0, MODEL},
                                       {"config", required_argument, 0, CONFIG},
                                       {"synthetic", no_argument, 0, SYN},
                                       {"device", required_argument, 0, DEVICE},
                                       {"kv-pages", required_argument, 0, KVP},
                                       {"page-size", required_argument, 0, PSZ},
                                       {"max-seqs", required_argument, 0, MSEQ},
                                       {"max-batch-tokens", required_argument, 0, MBT},
                                       {"endpoint", required_argument, 0, EP},
                                       {"admin-endpoint", required_argument, 0, AEP},
                                       {"socket-mode", required_argument, 0, SMODE},
                                       {"listen", required_argument, 0, LISTEN},
                                       {"curve-keys", required_argument, 0, CKEYS},
                                       {"curve-clients", required_argument, 0, CCLI},
                                       {"conf", required_argument, 0, CONF},
                                       {"heartbeat-ms", required_argument, 0, HB},
                                       {"pidfile", required_argument, 0, PID},
                                       {"foreground", no_argument, 0, FG},
                                       {"help", no_argument, 0, HELP},
                                       {"version", no_argument, 0, VERSION},
                                       {"http", required_argument, 0, HTTP},
                                       {"api-keys", required_argument, 0, APIKEYS},
                                       {"batch-invariant", no_argument, 0, BINV},
                                       {0, 0, 0, 0}};
  memset(o, 0, sizeof *o);
  o->device = "auto";
  o->socket_mode = 0600;
  o->heartbeat_ms = 1000;
  optind = 1;
  int c, r;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case MODEL:
        if (o->n_models == AOQD_MAX_MODEL_ARGS) {
          fprintf(stderr, "aoqd: at most %d --model\n", AOQD_MAX_MODEL_ARGS);
          return 2;
        }
        o->models[o->n_models].name = optarg;
        o->models[o->n_models++].config = NULL;
        break;
      case CONFIG:
        if (!o->n_models) {
          fprintf(stderr, "aoqd: --config must follow a --model\n");
          return 2;
        }
        o->models[o->n_models - 1].config = optarg;
        break;
      case SYN:
        o->synthetic = 1;
        break;
      case DEVICE:
        o->device = optarg;
        break;
      case KVP:
        if ((r = int_arg("--kv-pages", optarg, 1, 1 << 24, 10, &o->kv_pages))) return r;
        break;
      case PSZ:
        if ((r = int_arg("--page-size", optarg, 1, 4096, 10, &o->page_size))) return r;
        break;
      case MSEQ:
        if ((r = int_arg("--max-seqs", optarg, 1, 1024, 10, &o->max_seqs))) return r;
        break;
      case MBT:
        if ((r = int_arg("--max-batch-tokens", optarg, 1, 1 << 20, 10, &o->max_batch_tokens)))
          return r;
        break;
      case EP:
        o->endpoint = optarg;
        break;
      case AEP:
        o->admin_endpoint = optarg;
        break;
      case SMODE:
        if ((r = int_arg("--socket-mode", optarg, 0, 0777, 8, &o->socket_mode))) return r;
        break;
      case LISTEN:
        o->listen = optarg;
        break;
      case CKEYS:
        o->curve_keys = optarg;
        break;
      case CCLI:
        o->curve_clients = optarg;
        break;
      case CONF:
        o->conf = optarg;
        break;
      case HB:
        if ((r = int_arg("--heartbeat-ms", optarg, 10, 600000, 10, &o->heartbeat_ms))) return r;
        break;
      case PID:
        o->pidfile = optarg;
        break;
      case FG:
        o->foreground = 1;
        break;
      case BINV:
        o->batch_invariant = 1;
        break;
      case HTTP:
        o->http = optarg;
        break;
      case APIKEYS:
        o->api_keys = optarg;
        break;
      case HELP:
        fputs(usage, stdout);
        return 1;
      case VERSION:
        printf("aoqd %s\n", aoq_version());
        return 1;
      default:
        fputs(usage, stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "aoqd: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (o->api_keys && !o->http) {
    fprintf(stderr, "aoqd: --api-keys needs --http\n");
    return 2;
  }
  if (o->listen) {
    if (strncmp(o->listen, "tcp://", 6)) {
      fprintf(stderr, "aoqd: --listen takes a tcp:// endpoint\n");
      return 2;
    }
    if (!o->curve_keys || !o->curve_clients) {
      fprintf(stderr,
              "aoqd: --listen needs --curve-keys and --curve-clients (TCP is CURVE-only)\n");
      return 2;
    }
  }
  for (const char *const *ep = (const char *const[]){o->endpoint, o->admin_endpoint}, *const *e =
                                                                                          ep + 2;
       ep < e; ep++)
    if (*ep && strncmp(*ep, "ipc://", 6)) {
      fprintf(stderr,
              "aoqd: --endpoint and --admin-endpoint take ipc:// endpoints (TCP: --listen)\n");
      return 2;
    }
  return 0;
}
