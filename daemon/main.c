/* main.c — aoqd: options, device and models, signals, pidfile, detaching, then the server loop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "daemon/args.h"
#include "daemon/http.h"
#include "daemon/progress.h"
#include "daemon/server.h"

static void on_signal(int sig) {
  if (sig == SIGHUP)
    aoqd_sig_hup = 1;
  else
    aoqd_sig_term = 1;
}

static int write_pidfile(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    AOQ_ERROR("cannot write pidfile|path=%s error=\"%s\"", path, strerror(errno));
    return -1;
  }
  fprintf(f, "%ld\n", (long)getpid());
  fclose(f);
  return 0;
}

/* Detaches before any thread exists (the device's thread pool would not survive a fork): the
 * parent waits on a pipe until the child is serving (exit 0) or failed (exit 1), so the shell that
 * started aoqd still learns whether it came up. stderr (the log) stays. Returns the pipe's write
 * end in the child, or -1 on failure. */
static int detach(void) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t p = fork();
  if (p < 0) return -1;
  if (p > 0) {
    close(fds[1]);
    char c = '1';
    ssize_t n;
    do n = read(fds[0], &c, 1);
    while (n < 0 && errno == EINTR);
    _exit(n == 1 && c == '0' ? 0 : 1);
  }
  close(fds[0]);
  if (setsid() < 0) return -1;
  int fd = open("/dev/null", O_RDWR);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    if (fd > 2) close(fd);
  }
  return fds[1];
}

static void tell_parent(int *fd, char c) {
  if (*fd < 0) return;
  if (write(*fd, &c, 1) != 1) AOQ_WARN("cannot notify the launching process");
  close(*fd);
  *fd = -1;
}

int main(int argc, char **argv) {
  aoqd_opts o;
  int r = aoqd_args_parse(argc, argv, &o);
  if (r == 1) return 0;
  if (r == 2) return 2;
  if (o.n_models == 0) {
    o.models[0].name = "tiny";
    o.models[0].config = NULL;
    o.n_models = 1;
    if (!o.synthetic) AOQ_INFO("no --model given: serving the embedded tiny model, synthetic");
    o.synthetic = 1;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  int ready_fd = -1, wrote_pid = 0;
  if (!o.foreground && (ready_fd = detach()) < 0) {
    AOQ_ERROR("cannot detach|error=\"%s\"", strerror(errno));
    return 1;
  }
  aoq_device *dev;
  /* read by the GPU backends when they open (kernels/gpu/gpu_kernels.h) */
  if (o.batch_invariant) setenv("AOQ_BATCH_INVARIANT", "1", 1);
  if (aoq_device_open(o.device, &dev) != AOQ_OK) {
    AOQ_ERROR("device|name=%s error=\"%s\"", o.device, aoq_last_error());
    tell_parent(&ready_fd, '1');
    return 1;
  }
  AOQ_INFO("device open|device=%s", aoq_device_name(dev));
  aoqd_metrics *mx = malloc(sizeof *mx);
  if (!mx) return 1;
  aoqd_metrics_init(mx);
  aoqd_models models;
  memset(&models, 0, sizeof models);
  models.dev = dev;
  models.defaults.kv_pages = o.kv_pages;
  models.defaults.page_size = o.page_size;
  models.defaults.max_seqs = o.max_seqs;
  models.defaults.max_batch_tokens = o.max_batch_tokens;
  int code = 1;
  aoqd_progress prog; /* startup loads only: defaults.progress is cleared after them */
  models.defaults.progress = aoqd_progress_cb;
  models.defaults.progress_ctx = &prog;
  for (int i = 0; i < o.n_models; i++) {
    aoqd_progress_init(&prog, stderr, o.models[i].name);
    aoq_status ls = aoqd_models_load(&models, o.models[i].name, o.models[i].config, o.synthetic);
    aoqd_progress_end(&prog);
    if (ls != AOQ_OK) {
      AOQ_ERROR("model load failed|model=%s config=%s error=\"%s\"", o.models[i].name,
                o.models[i].config ? o.models[i].config : "bf16", aoq_last_error());
      goto out;
    }
  }
  models.defaults.progress = NULL;
  models.defaults.progress_ctx = NULL;
  if (o.pidfile && write_pidfile(o.pidfile) != 0) goto out;
  wrote_pid = o.pidfile != NULL;
  aoqd_server sv;
  if (aoqd_server_init(&sv, &o, dev, &models, mx) != AOQ_OK) {
    AOQ_ERROR("cannot start serving|error=\"%s\"", aoq_last_error());
    aoqd_server_fini(&sv);
    goto out;
  }
  aoqd_http *http = NULL;
  if (o.http) { /* HTTP requests enter as clients of the endpoint just bound (http.h) */
    char ep[600];
    aoqd_http_opts ho = {o.http, o.api_keys, o.endpoint, mx, sv.t_start};
    if (!o.endpoint && aoq_wire_default_endpoint(0, ep, sizeof ep) == AOQ_OK) ho.endpoint = ep;
    if (aoqd_http_start(&ho, &http) != AOQ_OK) {
      AOQ_ERROR("cannot start http|error=\"%s\"", aoq_last_error());
      aoqd_server_fini(&sv);
      goto out;
    }
  }
  tell_parent(&ready_fd, '0');
  code = aoqd_server_run(&sv);
  aoqd_http_stop(http);
  aoqd_server_fini(&sv);
out:
  tell_parent(&ready_fd, '1');
  if (wrote_pid) unlink(o.pidfile); /* never another daemon's */
  aoqd_models_free(&models);
  aoq_device_close(dev);
  aoqd_metrics_destroy(mx);
  free(mx);
  AOQ_INFO("exit|code=%d", code);
  return code;
}
