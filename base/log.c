#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static aoq_log_level min_level = AOQ_LOG_INFO;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void read_env(void) {
  const char *e = getenv("AOQ_LOG");
  if (!e) return;
  if (!strcmp(e, "debug")) min_level = AOQ_LOG_DEBUG;
  else if (!strcmp(e, "warn")) min_level = AOQ_LOG_WARN;
  else if (!strcmp(e, "error")) min_level = AOQ_LOG_ERROR;
}

void aoq_log_set_level(aoq_log_level lvl) {
  pthread_once(&env_once, read_env);
  min_level = lvl;
}

void aoq_log(aoq_log_level lvl, const char *fmt, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  pthread_once(&env_once, read_env);
  if (lvl < min_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *kv = strchr(msg, '|');
  if (kv) *kv++ = 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  pthread_mutex_lock(&log_lock);
  fprintf(stderr, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"%s%s\n",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
          ts.tv_nsec / 1000000, names[lvl], msg, kv ? " " : "", kv ? kv : "");
  pthread_mutex_unlock(&log_lock);
}
