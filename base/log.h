/*
 * log.h — structured logging to stderr: one line per event, `ts=... level=... msg="..." k=v`.
 * Setup paths log freely; the hot path never logs (STYLE.md rule 8). Thread-safe.
 */
#ifndef AOQ_BASE_LOG_H
#define AOQ_BASE_LOG_H

#include "base/error.h"

typedef enum aoq_log_level { AOQ_LOG_DEBUG, AOQ_LOG_INFO, AOQ_LOG_WARN, AOQ_LOG_ERROR } aoq_log_level;

/* Messages below this level are dropped (default INFO; AOQ_LOG=debug in the environment). */
void aoq_log_set_level(aoq_log_level lvl);
/* fmt is the message; key=value pairs can follow in it after a '|' e.g. "client gone|tenant=%s". */
void aoq_log(aoq_log_level lvl, const char *fmt, ...) AOQ_PRINTF(2, 3);

#define AOQ_INFO(...) aoq_log(AOQ_LOG_INFO, __VA_ARGS__)
#define AOQ_WARN(...) aoq_log(AOQ_LOG_WARN, __VA_ARGS__)
#define AOQ_ERROR(...) aoq_log(AOQ_LOG_ERROR, __VA_ARGS__)
#define AOQ_DEBUG(...) aoq_log(AOQ_LOG_DEBUG, __VA_ARGS__)

#endif
