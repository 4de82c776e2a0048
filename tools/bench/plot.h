/*
 * plot.h — aoq-bench tables as plots: an SVG line chart drawn by gnuplot (gnuplot-nox), and a
 * sweep that runs a subcommand once per value of a list option (`--batch 1,2,4,8`) and plots one
 * of its `key: value` result lines against it (`--plot FILE.svg`).
 */
#ifndef AOQ_BENCH_PLOT_H
#define AOQ_BENCH_PLOT_H

/* Writes an SVG of y[i] against x[i] (n points) to `svg` with gnuplot. Returns 0, or 1 with a
 * message on stderr (gnuplot missing or failing, no file written). */
int aoq_bench_plot_svg(const char *svg, const char *title, const char *xlabel, const char *ylabel,
                       const double *x, const double *y, int n);

/* 1 when argv has --plot (the caller then returns aoq_bench_plot_sweep's result). */
int aoq_bench_plot_wanted(int argc, char **argv);

/* Runs `run` (the subcommand `name`) in a child process once per value of the comma-separated
 * option --<xopt> (e.g. "1,2,4,8"), with --<xopt> V and without --plot, passing its output
 * through; reads its "<ykey>: <number>" line; prints a "<xopt> <ykey>" table and writes the
 * SVG named by --plot. Returns the subcommand's convention: 0, 1 (a run failed), 2 (usage). */
int aoq_bench_plot_sweep(int argc, char **argv, const char *name, int (*run)(int, char **),
                         const char *xopt, const char *ykey);

#endif
