/*
 * progress.h — model load / quantize progress for people: a redrawn bar on a terminal, plain
 * log lines otherwise (at most one per 10 % or per second, and always the last). It is the
 * aoq_model_opts.progress callback of aoqd and aoq-run.
 *
 * Threading: one aoqd_progress per load; calls for it come from the loading thread only.
 */
#ifndef AOQD_PROGRESS_H
#define AOQD_PROGRESS_H

#include <stdio.h>

typedef struct aoqd_progress {
  FILE *out;         /* where the bar goes (stderr) */
  int tty;           /* out is a terminal: draw a bar */
  char what[64];     /* the model's name, shown before the stage */
  char stage[32];    /* the stage being shown */
  double t0, t_last; /* monotonic seconds: start of the stage, last plain line */
  int last_tenth;    /* last 10 % step printed as a plain line */
  int open_bar;      /* a bar is drawn and not yet ended with a newline */
} aoqd_progress;

/* Starts reporting for `what` (copied) on `out`; tty is detected with isatty. */
void aoqd_progress_init(aoqd_progress *p, FILE *out, const char *what);
/* The aoq_model_opts.progress callback: ctx is an aoqd_progress. */
void aoqd_progress_cb(void *ctx, const char *stage, int done, int total);
/* Ends a bar left open (a load that failed midway). */
void aoqd_progress_end(aoqd_progress *p);

#endif
