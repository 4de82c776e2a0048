/*
 * error.h — status + detail string convention used by every aoq layer.
 *
 * A failing function records a detail string for its thread and returns the status in one step:
 *     return aoq_err(AOQ_ESHAPE, "tensor %s: expected %lld columns, got %lld", name, want, got);
 * The detail is read with aoq_last_error() (include/aoq/aoq.h). Thread-safe: storage is per thread.
 */
#ifndef AOQ_BASE_ERROR_H
#define AOQ_BASE_ERROR_H

#include "aoq/aoq.h"

#if defined(__GNUC__)
#define AOQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AOQ_PRINTF(a, b)
#endif

/* Records the formatted detail for this thread and returns s. */
aoq_status aoq_err(aoq_status s, const char *fmt, ...) AOQ_PRINTF(2, 3);
/* Clears the detail of this thread. */
void aoq_err_clear(void);

/* Fault injection for tests (SQLite style): when armed with n > 0, the n-th call of
 * aoq_fault_hit() from now on returns 1 (and disarms). Allocation, shm and socket paths call it. */
void aoq_fault_arm(long n);
int aoq_fault_hit(void);

#define AOQ_TRY(expr)                                                                              \
  do {                                                                                             \
    aoq_status aoq_try_s_ = (expr);                                                                \
    if (aoq_try_s_ != AOQ_OK) return aoq_try_s_;                                                  \
  } while (0)

#endif
