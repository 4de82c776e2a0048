/* plot.c — aoq-bench sweeps and gnuplot SVG charts (plot.h). */
#include "tools/bench/plot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_POINTS 64

/* A gnuplot string literal: single quotes, a quote doubled. */
static void put_quoted(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    fputc(*s, f);
  }
  fputc('\'', f);
}

int aoq_bench_plot_svg(const char *svg, const char *title, const char *xlabel, const char *ylabel,
                       const double *x, const double *y, int n) {
  if (n < 1) {
    fprintf(stderr, "aoq-bench: --plot: no points to plot\n");
    return 1;
  }
  unlink(svg);
  FILE *g = popen("gnuplot", "w");
  if (!g) {
    fprintf(stderr, "aoq-bench: --plot: cannot run gnuplot: %s\n", strerror(errno));
    return 1;
  }
  fprintf(g, "set terminal svg size 800,500 dynamic enhanced font 'sans,12'\nset output ");
  put_quoted(g, svg);
  fprintf(g, "\nset title ");
  put_quoted(g, title);
  fprintf(g, " noenhanced\nset xlabel ");
  put_quoted(g, xlabel);
  fprintf(g, " noenhanced\nset ylabel ");
  put_quoted(g, ylabel);
  fprintf(g, " noenhanced\nset grid\nset key off\nset yrange [0:*]\n");
  int log2x = n > 2 && x[0] > 0;
  for (int i = 1; i < n && log2x; i++) log2x = x[i] >= 2 * x[i - 1] - 1e-9;
  if (log2x) fprintf(g, "set logscale x 2\n"); /* batch sizes 1,2,4,8... spread evenly */
  fprintf(g, "$data << EOD\n");
  for (int i = 0; i < n; i++) fprintf(g, "%.17g %.17g\n", x[i], y[i]);
  fprintf(g,
          "EOD\nplot $data using 1:2 with linespoints pt 7 lw 2, "
          "$data using 1:2:(sprintf('%%.0f', $2)) with labels offset 0,1 notitle\n");
  int st = pclose(g);
  struct stat sb;
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || stat(svg, &sb) != 0 ||
      sb.st_size == 0) {
    fprintf(stderr, "aoq-bench: --plot: gnuplot failed (status %d); is gnuplot-nox installed?\n",
            st == -1        ? -1
            : WIFEXITED(st) ? WEXITSTATUS(st)
                            : 128);
    return 1;
  }
  return 0;
}

int aoq_bench_plot_wanted(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--plot") || !strncmp(argv[i], "--plot=", 7)) return 1;
  return 0;
}

/* Runs one point in a child whose stdout comes back through a pipe (and is echoed); *y gets the
 * value of the "<ykey>: " line. */
static int run_point(int argc, char **argv, int (*run)(int, char **), const char *ykey, double *y) {
  int fds[2];
  if (pipe(fds) != 0) return 1;
  fflush(stdout);
  pid_t p = fork();
  if (p < 0) return 1;
  if (p == 0) {
    close(fds[0]);
    dup2(fds[1], 1);
    close(fds[1]);
    int rc = run(argc, argv);
    fflush(stdout);
    _exit(rc);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "r");
  char line[1024];
  size_t kl = strlen(ykey);
  int found = 0;
  while (f && fgets(line, sizeof line, f)) {
    fputs(line, stdout);
    char *end;
    if (!strncmp(line, ykey, kl) && line[kl] == ':') {
      *y = strtod(line + kl + 1, &end);
      found = end != line + kl + 1;
    }
  }
  if (f) fclose(f);
  int st;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
  if (!found) {
    fprintf(stderr, "aoq-bench: --plot: the run printed no '%s:' line\n", ykey);
    return 1;
  }
  return 0;
}

int aoq_bench_plot_sweep(int argc, char **argv, const char *name, int (*run)(int, char **),
                         const char *xopt, const char *ykey) {
  const char *svg = NULL, *list = "1";
  char xflag[64];
  snprintf(xflag, sizeof xflag, "--%s", xopt);
  char **cargv = calloc((size_t)argc + 3, sizeof *cargv);
  if (!cargv) return 1;
  int cargc = 0;
  for (int i = 0; i < argc; i++) {
    if (i > 0 && !strcmp(argv[i], "--plot") && i + 1 < argc) {
      svg = argv[++i];
    } else if (i > 0 && !strncmp(argv[i], "--plot=", 7)) {
      svg = argv[i] + 7;
    } else if (i > 0 && !strcmp(argv[i], xflag) && i + 1 < argc) {
      list = argv[++i];
    } else {
      cargv[cargc++] = argv[i];
    }
  }
  if (!svg || !svg[0]) {
    fprintf(stderr, "aoq-bench %s: --plot needs a file name (FILE.svg)\n", name);
    free(cargv);
    return 2;
  }
  double x[MAX_POINTS], y[MAX_POINTS];
  int n = 0;
  for (const char *s = list; *s;) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || (*end && *end != ',') || v < 1 || n == MAX_POINTS) {
      fprintf(stderr, "aoq-bench %s: --%s takes a list of positive integers (at most %d): '%s'\n",
              name, xopt, MAX_POINTS, list);
      free(cargv);
      return 2;
    }
    x[n++] = (double)v;
    s = *end ? end + 1 : end;
  }
  char val[32];
  cargv[cargc++] = xflag;
  cargv[cargc++] = val;
  cargv[cargc] = NULL;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    snprintf(val, sizeof val, "%.0f", x[i]);
    rc = run_point(cargc, cargv, run, ykey, &y[i]);
  }
  free(cargv);
  if (rc) return rc;
  printf("# %s: %s vs %s\n%s %s\n", name, ykey, xopt, xopt, ykey);
  for (int i = 0; i < n; i++) printf("%.0f %.3f\n", x[i], y[i]);
  char title[128];
  snprintf(title, sizeof title, "aoq-bench %s", name);
  if (aoq_bench_plot_svg(svg, title, xopt, ykey, x, y, n)) return 1;
  printf("plot: %s\n", svg);
  return 0;
}
