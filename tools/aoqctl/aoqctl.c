/* aoqctl — administer a running aoqd: status, tenants, quota, load, unload, reconfigure, drain,
 * shutdown. Talks to the admin endpoint (only the daemon's uid is served there).
 * Exit codes: 0 ok, 1 the daemon (or the connection) reported an error, 2 usage. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "aoq/aoq.h"

static const char usage[] =
    "usage: aoqctl [--endpoint EP] [--json] COMMAND [ARGS]\n"
    "commands:\n"
    "  status                          models, memory, tenants, scheduler, wire counters\n"
    "  tenants                         tenants with usage and quotas\n"
    "  quota TENANT [--kv-pages N] [--max-seqs N] [--priority N]\n"
    "  load MODEL [--config CFG] [--synthetic]\n"
    "  unload MODEL\n"
    "  reconfigure MODEL --config CFG  re-quantize live; running sequences continue\n"
    "  drain                           refuse new generations, finish running ones\n"
    "  shutdown                        drain, then exit\n"
    "  keygen                          print a new CURVE key pair (public, secret; Z85) for\n"
    "                                  --curve-keys / --curve-clients and $AOQ_CURVE_*KEY\n"
    "options: --endpoint EP (default: the admin socket of this user, or $AOQ_ADMIN_ENDPOINT),\n"
    "         --json (machine output), --help, --version\n";

static void human_size(double b, char *out, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    i++;
  }
  snprintf(out, n, "%.2f%s", b, u[i]);
}

static void print_kv(const char *prefix, const cJSON *o) {
  for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
    if (cJSON_IsObject(it)) {
      char p[256];
      snprintf(p, sizeof p, "%s%s.", prefix, it->string);
      print_kv(p, it);
    } else if (cJSON_IsString(it)) {
      printf("%s%s: %s\n", prefix, it->string, it->valuestring);
    } else if (cJSON_IsBool(it)) {
      printf("%s%s: %s\n", prefix, it->string, cJSON_IsTrue(it) ? "yes" : "no");
    } else if (cJSON_IsNumber(it)) {
      double v = it->valuedouble;
      if (strstr(it->string, "bytes") && v >= 1024) {
        char h[32];
        human_size(v, h, sizeof h);
        printf("%s%s: %.0f (%s)\n", prefix, it->string, v, h);
      } else if (v == (double)(long long)v) {
        printf("%s%s: %lld\n", prefix, it->string, (long long)v);
      } else {
        printf("%s%s: %.3f\n", prefix, it->string, v);
      }
    }
  }
}

/* redis INFO style: "# Section" then "key: value" lines, from the same document as --json. */
static void print_status(const cJSON *root, int tenants_only) {
  if (!tenants_only) {
    printf("# Daemon\n");
    print_kv("", cJSON_GetObjectItem(root, "daemon"));
    printf("\n# Models\n");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "models")) {
      char p[300];
      snprintf(p, sizeof p, "model.%s.", cJSON_GetStringValue(cJSON_GetObjectItem(m, "name")));
      print_kv(p, m);
    }
    printf("\n# Memory\n");
    print_kv("", cJSON_GetObjectItem(root, "memory"));
  }
  printf("%s# Tenants\n", tenants_only ? "" : "\n");
  const cJSON *t;
  cJSON_ArrayForEach(t, cJSON_GetObjectItem(root, "tenants")) {
    char p[300];
    snprintf(p, sizeof p, "tenant.%s.", cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")));
    print_kv(p, t);
  }
  if (tenants_only) return;
  printf("\n# Scheduler\n");
  print_kv("", cJSON_GetObjectItem(root, "scheduler"));
  printf("\n# Wire\n");
  print_kv("", cJSON_GetObjectItem(root, "wire"));
}

static int int_opt(const char *v, int *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!v[0] || *end || x < -1000000000 || x > 1000000000) return -1;
  *out = (int)x;
  return 0;
}

enum { EP = 256, JSON, HELP, VERSION, CONFIG, SYN, KVP, MSEQ, PRIO };

/* Takes one of the options that may stand before or after the command: 0 when taken, -1 for a bad
 * value or an option not of this set (--help/--version are only read before the command). */
static int take_opt(int c, const char *v, const char **endpoint, int *json, aoq_admin_args *a) {
  switch (c) {
    case EP:
      *endpoint = v;
      return 0;
    case JSON:
      *json = 1;
      return 0;
    case CONFIG:
      a->config = v;
      return 0;
    case SYN:
      a->synthetic = 1;
      return 0;
    case KVP:
      return int_opt(v, &a->kv_pages);
    case MSEQ:
      return int_opt(v, &a->max_seqs);
    case PRIO:
      return int_opt(v, &a->priority);
    default:
      return -1;
  }
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"endpoint", required_argument, 0, EP},   {"json", no_argument, 0, JSON},
      {"help", no_argument, 0, HELP},           {"version", no_argument, 0, VERSION},
      {"config", required_argument, 0, CONFIG}, {"synthetic", no_argument, 0, SYN},
      {"kv-pages", required_argument, 0, KVP},  {"max-seqs", required_argument, 0, MSEQ},
      {"priority", required_argument, 0, PRIO}, {0, 0, 0, 0}};
  const char *endpoint = NULL;
  int json = 0, c;
  aoq_admin_args a = {0};
  while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1 || optind < argc) {
    if (c == -1) break;
    switch (c) {
      case HELP:
        fputs(usage, stdout);
        return 0;
      case VERSION:
        printf("aoqctl %s\n", aoq_version());
        return 0;
      default:
        if (take_opt(c, optarg, &endpoint, &json, &a)) goto bad;
    }
  }
  if (optind >= argc) goto bad;
  const char *cmd = argv[optind++];
  if (!strcmp(cmd, "keygen")) {
    if (optind < argc) goto bad;
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0) {
      fprintf(stderr, "aoqctl: keygen: %s\n", zmq_strerror(zmq_errno()));
      return 1;
    }
    printf("%s\n%s\n", pub, sec);
    return 0;
  }
  /* options may also follow the command and its argument */
  const char *arg = NULL;
  if (optind < argc && argv[optind][0] != '-') arg = argv[optind++];
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
    if (take_opt(c, optarg, &endpoint, &json, &a)) goto bad;
  if (optind < argc) goto bad;
  static const struct {
    const char *name;
    aoq_admin_cmd cmd;
    int needs_arg;
  } cmds[] = {{"status", AOQ_ADMIN_STATUS, 0}, {"tenants", AOQ_ADMIN_TENANTS, 0},
              {"quota", AOQ_ADMIN_QUOTA, 1},   {"load", AOQ_ADMIN_LOAD, 1},
              {"unload", AOQ_ADMIN_UNLOAD, 1}, {"reconfigure", AOQ_ADMIN_RECONFIGURE, 1},
              {"drain", AOQ_ADMIN_DRAIN, 0},   {"shutdown", AOQ_ADMIN_SHUTDOWN, 0}};
  int k = -1;
  for (int i = 0; i < (int)(sizeof cmds / sizeof cmds[0]); i++)
    if (!strcmp(cmds[i].name, cmd)) k = i;
  if (k < 0 || (cmds[k].needs_arg && !arg) || (!cmds[k].needs_arg && arg)) goto bad;
  if (cmds[k].cmd == AOQ_ADMIN_RECONFIGURE && !a.config) {
    fprintf(stderr, "aoqctl: reconfigure needs --config CFG\n");
    return 2;
  }
  if (cmds[k].cmd == AOQ_ADMIN_QUOTA)
    a.tenant = arg;
  else
    a.model = arg;

  aoq_connect_opts co = {0};
  co.endpoint = endpoint;
  co.admin = 1;
  co.name = "aoqctl";
  aoq_client *cl;
  aoq_status cs = aoq_connect_with(&co, &cl);
  if (cs != AOQ_OK) {
    fprintf(stderr, "aoqctl: %s (%s)\n", aoq_last_error(), aoq_strerror(cs));
    return 1;
  }
  char *doc = NULL;
  aoq_status s = aoq_admin(cl, cmds[k].cmd, &a, &doc);
  if (s != AOQ_OK) {
    fprintf(stderr, "aoqctl: %s: %s (%s)\n", cmd, aoq_client_last_error(cl), aoq_strerror(s));
    aoq_disconnect(cl);
    return 1;
  }
  if (!doc) {
    if (json)
      printf("{\"ok\":true}\n");
    else
      printf("%s %s: ok\n", cmd, arg ? arg : "");
  } else if (json) {
    printf("%s\n", doc);
  } else if (cmds[k].cmd == AOQ_ADMIN_DRAIN || cmds[k].cmd == AOQ_ADMIN_SHUTDOWN) {
    printf("%s: ok (draining%s)\n", cmd, cmds[k].cmd == AOQ_ADMIN_SHUTDOWN ? ", then exiting" : "");
  } else {
    cJSON *root = cJSON_Parse(doc);
    if (!root) {
      fprintf(stderr, "aoqctl: the daemon's status is not JSON\n");
      aoq_free(doc);
      aoq_disconnect(cl);
      return 1;
    }
    print_status(root, cmds[k].cmd == AOQ_ADMIN_TENANTS || cmds[k].cmd == AOQ_ADMIN_QUOTA);
    cJSON_Delete(root);
  }
  aoq_free(doc);
  aoq_disconnect(cl);
  return 0;
bad:
  fputs(usage, stderr);
  return 2;
}
