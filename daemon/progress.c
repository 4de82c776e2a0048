/* progress.c — load / quantize progress bars and lines (progress.h). */
#include "daemon/progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#define BAR 30

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void aoqd_progress_init(aoqd_progress *p, FILE *out, const char *what) {
  memset(p, 0, sizeof *p);
  p->out = out;
  p->tty = isatty(fileno(out));
  snprintf(p->what, sizeof p->what, "%s", what ? what : "model");
  p->last_tenth = -1;
}

void aoqd_progress_end(aoqd_progress *p) {
  if (p->open_bar) fputc('\n', p->out);
  p->open_bar = 0;
}

void aoqd_progress_cb(void *ctx, const char *stage, int done, int total) {
  aoqd_progress *p = ctx;
  if (!p || !stage || total <= 0) return;
  if (done < 0) done = 0;
  if (done > total) done = total;
  double now = mono();
  if (strncmp(p->stage, stage, sizeof p->stage - 1)) { /* a new stage starts its own bar */
    aoqd_progress_end(p);
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    p->t0 = now;
    p->t_last = 0;
    p->last_tenth = -1;
  }
  int tenth = (int)(10LL * done / total);
  if (p->tty) {
    char bar[BAR + 1];
    int fill = (int)((long long)BAR * done / total);
    for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    fprintf(p->out, "\r%s: %-9s [%s] %3d%% %d/%d %.1fs", p->what, stage, bar,
            (int)(100LL * done / total), done, total, now - p->t0);
    p->open_bar = 1;
    if (done == total) aoqd_progress_end(p);
    fflush(p->out);
    return;
  }
  if (done != total && tenth == p->last_tenth && now - p->t_last < 1.0) return;
  p->last_tenth = tenth;
  p->t_last = now;
  AOQ_INFO("progress|model=%s stage=%s done=%d total=%d percent=%d seconds=%.2f", p->what, stage,
           done, total, (int)(100LL * done / total), now - p->t0);
}
