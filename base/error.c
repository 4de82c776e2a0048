#include "base/error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Thread_local char last_detail[512];
static atomic_long fault_countdown;

const char *aoq_version(void) { return AOQ_VERSION_STRING; }

const char *aoq_strerror(aoq_status s) {
  static const char *const names[AOQ_STATUS_COUNT] = {
      [AOQ_OK] = "ok",
      [AOQ_EINVAL] = "invalid argument",
      [AOQ_ENOMEM] = "out of memory",
      [AOQ_EIO] = "input/output error",
      [AOQ_EFORMAT] = "malformed data",
      [AOQ_EUNSUPPORTED] = "not supported",
      [AOQ_EDEVICE] = "device error",
      [AOQ_ENODEV] = "no such device or backend",
      [AOQ_ENOTFOUND] = "not found",
      [AOQ_ESHAPE] = "shape mismatch",
      [AOQ_EPERM] = "permission denied",
      [AOQ_EPROTO] = "protocol error",
      [AOQ_EBUSY] = "busy",
      [AOQ_ETIMEOUT] = "timed out",
      [AOQ_ECANCELED] = "cancelled",
      [AOQ_EQUOTA] = "quota exceeded",
      [AOQ_ECONN] = "connection failed",
      [AOQ_EINTERNAL] = "internal error",
  };
  if ((unsigned)s >= AOQ_STATUS_COUNT) return "unknown status";
  return names[s];
}

const char *aoq_last_error(void) { return last_detail; }

void aoq_err_clear(void) { last_detail[0] = 0; }

aoq_status aoq_err(aoq_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_detail, sizeof last_detail, fmt, ap);
  va_end(ap);
  return s;
}

void aoq_fault_arm(long n) { atomic_store(&fault_countdown, n); }

int aoq_fault_hit(void) {
  long v = atomic_load(&fault_countdown);
  while (v > 0) {
    if (atomic_compare_exchange_weak(&fault_countdown, &v, v - 1)) return v == 1;
  }
  return 0;
}
