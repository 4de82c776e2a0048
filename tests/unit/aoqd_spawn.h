/*
 * aoqd_spawn.h — starts a private aoqd as a child process for tests that talk to a real daemon
 * (test_devbuf on the CPU backend, tests/gpu/test_cuda_devbuf on cuda:0), on sockets under a fresh
 * temp directory, and stops it with SIGTERM (drain, exit 0).
 * The binary: $AOQD, else <build dir>/daemon/aoqd (AOQ_BUILD_DIR, set by CMake), else aoqd next
 * to the test executable (tools/gpu/ship.sh's one bin/ folder).
 */
#ifndef AOQ_TESTS_AOQD_SPAWN_H
#define AOQ_TESTS_AOQD_SPAWN_H

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aoq/aoq.h"

typedef struct aoqd_child {
  pid_t pid;
  char dir[64];
  char endpoint[128], admin[128], log[128];
} aoqd_child;

/* Finds the aoqd binary (see above) into path; 0 if there is none. */
static inline int aoqd_find(char path[PATH_MAX], size_t n) {
  const char *env = getenv("AOQD");
  if (env && env[0] && access(env, X_OK) == 0) return snprintf(path, n, "%s", env) > 0;
#ifdef AOQ_BUILD_DIR
  snprintf(path, n, "%s/daemon/aoqd", AOQ_BUILD_DIR);
  if (access(path, X_OK) == 0) return 1;
#endif
  char self[PATH_MAX - 16];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) return 0;
  self[k] = 0;
  char *slash = strrchr(self, '/');
  if (!slash) return 0;
  *slash = 0;
  snprintf(path, n, "%s/aoqd", self);
  return access(path, X_OK) == 0;
}

static inline void aoqd_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Starts `aoqd --device <device> --model tiny --synthetic` and waits (up to wait_s) until it
 * answers a connection. Returns 0 on success; the daemon's stderr goes to d->log. */
static inline int aoqd_start(aoqd_child *d, const char *device, int wait_s) {
  char bin[PATH_MAX];
  memset(d, 0, sizeof *d);
  if (!aoqd_find(bin, sizeof bin)) {
    fprintf(stderr, "aoqd binary not found (set AOQD)\n");
    return -1;
  }
  snprintf(d->dir, sizeof d->dir, "/tmp/aoq-devbuf.XXXXXX");
  if (!mkdtemp(d->dir)) return -1;
  snprintf(d->endpoint, sizeof d->endpoint, "ipc://%s/aoqd.sock", d->dir);
  snprintf(d->admin, sizeof d->admin, "ipc://%s/aoqd-admin.sock", d->dir);
  snprintf(d->log, sizeof d->log, "%s/aoqd.log", d->dir);
  d->pid = fork();
  if (d->pid < 0) return -1;
  if (d->pid == 0) {
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 2);
    char pidfile[128];
    snprintf(pidfile, sizeof pidfile, "%s/aoqd.pid", d->dir);
    execl(bin, bin, "--foreground", "--device", device, "--model", "tiny", "--synthetic",
          "--pidfile", pidfile, "--endpoint", d->endpoint, "--admin-endpoint", d->admin,
          "--heartbeat-ms", "200", (char *)NULL);
    _exit(127);
  }
  setenv("AOQ_ENDPOINT", d->endpoint, 1);
  setenv("AOQ_ADMIN_ENDPOINT", d->admin, 1);
  setenv("AOQ_CONNECT_TIMEOUT_MS", "500", 1);
  for (int i = 0; i < wait_s * 10; i++) {
    aoq_client *c;
    if (aoq_connect(d->endpoint, &c) == AOQ_OK) {
      aoq_disconnect(c);
      return 0;
    }
    int st;
    if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
      fprintf(stderr, "aoqd exited at start; its log is %s\n", d->log);
      d->pid = 0;
      return -1;
    }
    aoqd_sleep_ms(100);
  }
  fprintf(stderr, "aoqd did not come up in %d s\n", wait_s);
  return -1;
}

/* Prints the daemon's log (on failure). */
static inline void aoqd_dump_log(const aoqd_child *d) {
  FILE *f = fopen(d->log, "r");
  if (!f) return;
  char line[1024];
  fprintf(stderr, "---- %s\n", d->log);
  while (fgets(line, sizeof line, f)) fputs(line, stderr);
  fclose(f);
}

/* SIGTERM and wait; returns the daemon's exit status (0: drained and exited cleanly). Removes the
 * temp directory. */
static inline int aoqd_stop(aoqd_child *d) {
  int rc = -1;
  if (d->pid > 0) {
    kill(d->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 300; i++) {
      if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      aoqd_sleep_ms(100);
    }
    if (rc < 0) {
      kill(d->pid, SIGKILL);
      waitpid(d->pid, &st, 0);
    }
    d->pid = 0;
  }
  char p[160];
  const char *files[] = {"aoqd.log", "aoqd.pid", "aoqd.sock", "aoqd-admin.sock"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", d->dir, files[i]);
    unlink(p);
  }
  rmdir(d->dir);
  return rc;
}

/* The number after "key": in the daemon's status JSON (first occurrence: the memory section comes
 * before the tenants), or -1. */
static inline double aoqd_status_number(const char *key) {
  aoq_connect_opts o = {0};
  o.admin = 1;
  aoq_client *a;
  if (aoq_connect_with(&o, &a) != AOQ_OK) return -1;
  char *json = NULL;
  double v = -1;
  if (aoq_admin(a, AOQ_ADMIN_STATUS, NULL, &json) == AOQ_OK && json) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p) v = strtod(p + strlen(pat), NULL);
  }
  aoq_free(json);
  aoq_disconnect(a);
  return v;
}

#endif
