/*
 * fuzz_main.c — standalone driver for the LLVMFuzzerTestOneInput targets, for compilers without
 * libFuzzer (gcc): a seeded mutation loop over a seed corpus, run for a time limit, meant to be
 * built with ASan+UBSan so that a memory error or undefined behaviour aborts the run.
 *
 *   fuzz_<target>_driver [--seconds S] [--seed N] [--iterations N] [--max-len BYTES]
 *                        [--crash-dir DIR] [--replay] [--quiet] [--verbose] PATH...
 *
 * PATHs are seed files or folders of seed files (not recursive). Mutations: bit flips, byte sets,
 * dictionary token inserts, range deletes and copies, number rewrites, truncations, splices of
 * two seeds. What the target declares (all optional, weak symbols below) shapes them:
 * fuzz_dict (its tokens), fuzz_length_prefixed (the input starts with a little-endian u64 header
 * length, as safetensors does: then most mutations land in the header, header-length edits and
 * header/data splices join in, and a header edit is usually followed by a fix-up of the length
 * prefix so that mutants get past the first check), fuzz_builtin_seeds (well-formed inputs that
 * need no seed folder). Feedback without coverage
 * instrumentation: an input whose outcome (the error detail with names and numbers blanked, or
 * "accepted") was not seen before joins the pool, and so does one accepted mutant in 64.
 *
 * On a crash the input is written to DIR/crash-<target>-<seed>.bin (default: the current folder)
 * before the process dies; `--replay FILE` runs saved inputs once each. Exit status 0 when the time
 * is up, 2 on bad usage or no seeds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aoq/aoq.h"
#include "base/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional, from the target: NULL-terminated phrases that identify which check refused an input.
 * With them an outcome is the set of phrases in the error detail; without them, the detail with
 * quoted text and digits blanked. */
extern const char *const fuzz_outcome_words[] __attribute__((weak));
/* Optional, from the target: a summary of what the last run saw (message type, format kind...),
 * mixed into its outcome so that accepted inputs of different kinds count as different. */
extern uint64_t fuzz_outcome_extra(void) __attribute__((weak));
/* Optional, from the target: NULL-terminated tokens that mutations insert (else a JSON set). */
extern const char *const fuzz_dict[] __attribute__((weak));
/* Optional, from the target: nonzero when inputs start with a u64 LE header length. */
extern const int fuzz_length_prefixed __attribute__((weak));
/* Optional, from the target: adds well-formed inputs through add(). */
extern void fuzz_builtin_seeds(int (*add)(const uint8_t *p, size_t len)) __attribute__((weak));

/* Provided by ASan/UBSan builds; absent (NULL) otherwise. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
extern void __asan_poison_memory_region(void const volatile *addr, size_t size)
    __attribute__((weak));
extern void __asan_unpoison_memory_region(void const volatile *addr, size_t size)
    __attribute__((weak));

#define MAX_POOL 4096
#define SEEN_SLOTS (1u << 16)
#define MAX_SEED_FILE ((size_t)16 << 20)

typedef struct input {
  uint8_t *p;
  size_t len;
} input;

static input pool[MAX_POOL];
static size_t npool, nseeds;
static uint64_t seen[SEEN_SLOTS];
static size_t nseen;
static uint64_t rng;

/* The input being run, for the crash handlers (read from a signal handler: plain globals). */
static const uint8_t *volatile cur_p;
static volatile size_t cur_len;
static char crash_path[4096];

static uint64_t rnd(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(size_t n) {
  return n ? (size_t)(rnd() % n) : 0;
}

static void save_crash(void) {
  const uint8_t *p = cur_p;
  size_t n = cur_len;
  if (!p) return;
  int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
  close(fd);
  static const char msg[] = "fuzz: crashing input saved to ";
  (void)!write(2, msg, sizeof msg - 1);
  (void)!write(2, crash_path, strlen(crash_path));
  (void)!write(2, "\n", 1);
  cur_p = NULL;
}

static void on_signal(int sig) {
  save_crash();
  signal(sig, SIG_DFL);
  raise(sig);
}

static int pool_add(const uint8_t *p, size_t len) {
  if (npool == MAX_POOL) {
    /* replace a mutant, never an original seed */
    if (npool == nseeds) return 0;
    size_t i = nseeds + rnd_below(npool - nseeds);
    free(pool[i].p);
    npool--;
    pool[i] = pool[npool];
  }
  uint8_t *c = malloc(len ? len : 1);
  if (!c) return 0;
  if (len) memcpy(c, p, len);
  pool[npool].p = c;
  pool[npool].len = len;
  npool++;
  return 1;
}

static int load_file(const char *path, size_t max_len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return 0;
  uint8_t *buf = malloc(MAX_SEED_FILE);
  size_t n = buf ? fread(buf, 1, MAX_SEED_FILE, fp) : 0;
  fclose(fp);
  int ok = buf && n <= max_len && pool_add(buf, n);
  free(buf);
  return ok;
}

static int load_path(const char *path, size_t max_len) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(sb.st_mode)) return load_file(path, max_len);
  DIR *d = opendir(path);
  if (!d) return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", path, e->d_name);
    if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode)) count += load_file(full, max_len);
  }
  closedir(d);
  return count;
}

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* Marks an outcome as seen; returns 1 if it is new. */
static int seen_add(uint64_t h) {
  if (h == 0) h = 1;
  if (nseen * 2 >= SEEN_SLOTS) return 0;
  for (size_t i = (size_t)h & (SEEN_SLOTS - 1);; i = (i + 1) & (SEEN_SLOTS - 1)) {
    if (seen[i] == h) return 0;
    if (seen[i] == 0) {
      seen[i] = h;
      nseen++;
      return 1;
    }
  }
}

/* The outcome of a run: the error detail with quoted text ("..." or '...') and digits blanked, so
 * that "tensor
 * "x": shape[2] ..." and "tensor "y": shape[0] ..." count as one. The target's calls leave the
 * detail empty when the input is accepted (run_one clears it before). */
static uint64_t outcome_hash(int accepted) {
  uint64_t h = 0xcbf29ce484222325ull;
  if (fuzz_outcome_extra) {
    uint64_t x = fuzz_outcome_extra();
    h = hash_bytes(&x, sizeof x, h);
  }
  if (accepted) return h ^ 0x5a5a5a5a;
  if (fuzz_outcome_words) {
    const char *detail = aoq_last_error();
    for (size_t i = 0; fuzz_outcome_words[i]; i++) {
      if (strstr(detail, fuzz_outcome_words[i])) h = hash_bytes(&i, sizeof i, h);
    }
    return h;
  }
  char quote = 0; /* the quote character of the quoted text we are in, or 0 */
  for (const char *s = aoq_last_error(); *s; s++) {
    if (quote) {
      if (*s == quote) quote = 0;
      continue;
    }
    if (*s == '"' || *s == '\'') {
      quote = *s;
      continue;
    }
    if (*s >= '0' && *s <= '9') { /* a number, hex ones included: 0xF9 */
      while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F') ||
             *s == 'x')
        s++;
      s--;
      continue;
    }
    h = hash_bytes(s, 1, h);
  }
  return h;
}

/* Growable work buffer. */
typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t n) {
  if (n <= b->cap) return;
  size_t c = b->cap ? b->cap : 4096;
  while (c < n) c *= 2;
  uint8_t *np = realloc(b->p, c);
  if (!np) {
    fprintf(stderr, "fuzz: out of memory\n");
    exit(1);
  }
  b->p = np;
  b->cap = c;
}

static void buf_set(buf *b, const uint8_t *p, size_t n) {
  buf_reserve(b, n);
  if (n) memcpy(b->p, p, n); /* an empty pool input has no bytes at all (p may be NULL) */
  b->len = n;
}

static void buf_insert(buf *b, size_t at, const void *p, size_t n) {
  buf_reserve(b, b->len + n);
  memmove(b->p + at + n, b->p + at, b->len - at);
  memcpy(b->p + at, p, n);
  b->len += n;
}

static void buf_erase(buf *b, size_t at, size_t n) {
  memmove(b->p + at, b->p + at + n, b->len - at - n);
  b->len -= n;
}

static uint64_t get_hlen(const buf *b) {
  uint64_t h = 0;
  if (b->len < 8) return 0;
  for (int i = 7; i >= 0; i--) h = h << 8 | b->p[i];
  return h;
}

static void set_hlen(buf *b, uint64_t h) {
  if (b->len < 8) return;
  for (int i = 0; i < 8; i++) b->p[i] = (uint8_t)((h >> (8 * i)) & 0xff);
}

/* Tokens of JSON and of the safetensors header, for targets without their own fuzz_dict. */
static const char *const json_dict[] = {
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    " ",
    "0",
    "-1",
    "1.5",
    "1e300",
    "-0",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "4294967296",
    "9007199254740993",
    "18446744073709551616",
    "\"dtype\"",
    "\"shape\"",
    "\"data_offsets\"",
    "\"__metadata__\"",
    "\"F32\"",
    "\"BF16\"",
    "\"F8_E4M3\"",
    "\"F8_E8M0\"",
    "\"F4_E2M1X2\"",
    "\"F4\"",
    "\"BOOL\"",
    "\"U64\"",
    "[0,0]",
    "[1,1,1,1,1,1,1,1,1]",
    "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},",
    NULL,
};
static const char *const *dict = json_dict;
static size_t ndict;
static int prefixed; /* fuzz_length_prefixed */

static const char *const numbers[] = {"0",
                                      "1",
                                      "2",
                                      "-1",
                                      "7",
                                      "8",
                                      "15",
                                      "16",
                                      "255",
                                      "256",
                                      "65536",
                                      "4294967295",
                                      "4294967296",
                                      "9007199254740992",
                                      "9007199254740993",
                                      "99999999999999999999",
                                      "1e3",
                                      "0.0"};

/* Position for a mutation: with a length prefix mostly inside the claimed header, where the
 * parser looks; anywhere otherwise. */
static size_t pick_pos(const buf *b, size_t extra) {
  size_t limit = b->len + extra;
  uint64_t h = get_hlen(b);
  if (prefixed && b->len > 8 && rnd_below(10) < 8) {
    size_t hdr_end = h <= b->len - 8 ? (size_t)h + 8 : b->len;
    if (hdr_end + extra < limit) limit = hdr_end + extra;
  }
  return rnd_below(limit);
}

/* One mutation; returns the change in length that happened inside the header (for the fix-up).
 * Without a length prefix the whole input is the "header" [hs, hdr_end). */
static long mutate_once(buf *b) {
  uint64_t h = get_hlen(b);
  size_t hs = prefixed ? 8 : 0;
  size_t hdr_end = !prefixed ? b->len : b->len >= 8 && h <= b->len - 8 ? (size_t)h + 8 : 0;
  size_t r = rnd_below(12);
  if (!prefixed && (r == 8 || r == 11)) r = r == 8 ? 1 : 10; /* no length, no data section */
  switch (r) {
    case 0: /* bit flip */
      if (b->len) b->p[pick_pos(b, 0) % b->len] ^= (uint8_t)(1u << rnd_below(8));
      return 0;
    case 1: { /* interesting byte */
      static const uint8_t v[] = {0,   0xff, 0x7f, 0x80, '"', '{', '}',  '[',  ']',  ',', ':',
                                  '-', '0',  '9',  'e',  '.', ' ', '\\', 0xc3, 0xa9, 1,   2};
      if (b->len) b->p[pick_pos(b, 0) % b->len] = v[rnd_below(sizeof v)];
      return 0;
    }
    case 2:
    case 3: { /* dictionary token */
      const char *t = dict[rnd_below(ndict)];
      size_t at = pick_pos(b, 1), n = strlen(t);
      if (at > b->len) at = b->len;
      buf_insert(b, at, t, n);
      return at >= hs && at < hdr_end ? (long)n : 0;
    }
    case 4: { /* delete a range */
      if (!b->len) return 0;
      size_t at = pick_pos(b, 0) % b->len, n = 1 + rnd_below(16);
      if (n > b->len - at) n = b->len - at;
      buf_erase(b, at, n);
      return at >= hs && at + n <= hdr_end ? -(long)n : 0;
    }
    case 5: { /* copy a range elsewhere (repeats entries, keys, numbers) */
      if (b->len < 2) return 0;
      size_t from = pick_pos(b, 0) % b->len, n = 1 + rnd_below(64);
      if (n > b->len - from) n = b->len - from;
      uint8_t tmp[64];
      memcpy(tmp, b->p + from, n);
      size_t at = pick_pos(b, 1);
      if (at > b->len) at = b->len;
      buf_insert(b, at, tmp, n);
      return at >= hs && at < hdr_end ? (long)n : 0;
    }
    case 6:
    case 7: { /* rewrite a number of the header: dims and offsets */
      if (hdr_end <= hs) return 0;
      size_t at = hs + rnd_below(hdr_end - hs), tries = 0;
      while (at < hdr_end && !(b->p[at] >= '0' && b->p[at] <= '9') && tries++ < 256) at++;
      if (at >= hdr_end || !(b->p[at] >= '0' && b->p[at] <= '9')) return 0;
      size_t end = at;
      while (end < hdr_end && b->p[end] >= '0' && b->p[end] <= '9') end++;
      char num[32];
      if (rnd_below(2)) {
        snprintf(num, sizeof num, "%s", numbers[rnd_below(sizeof numbers / sizeof numbers[0])]);
      } else { /* off by a little */
        unsigned long long v = strtoull((const char *)b->p + at, NULL, 10);
        v += (unsigned long long)rnd_below(9) - 4;
        snprintf(num, sizeof num, "%llu", v);
      }
      size_t n = strlen(num), old = end - at;
      buf_erase(b, at, old);
      buf_insert(b, at, num, n);
      return (long)n - (long)old;
    }
    case 8: { /* header length */
      static const uint64_t v[] = {0, 1, 2, 7, 8, (uint64_t)1 << 32, (uint64_t)1 << 63, ~0ull};
      size_t r = rnd_below(4);
      if (r == 0) {
        set_hlen(b, v[rnd_below(sizeof v / sizeof v[0])]);
      } else if (r == 1) {
        set_hlen(b, b->len >= 8 ? b->len - 8 + rnd_below(3) - 1 : 0);
      } else {
        set_hlen(b, h + rnd_below(17) - 8);
      }
      return 0;
    }
    case 9: /* truncate */
      if (b->len) b->len = rnd_below(b->len + 1);
      return 0;
    case 10: { /* splice: prefix of this one, suffix of another */
      const input *o = &pool[rnd_below(npool)];
      size_t cut = pick_pos(b, 1), from = rnd_below(o->len + 1);
      if (cut > b->len) cut = b->len;
      b->len = cut;
      buf_insert(b, cut, o->p + from, o->len - from);
      return 0;
    }
    default: { /* splice: this header with another's data section */
      const input *o = &pool[rnd_below(npool)];
      uint64_t oh = o->len >= 8 ? (uint64_t)o->p[0] | (uint64_t)o->p[1] << 8 : 0;
      for (int i = 2; i < 8 && o->len >= 8; i++) oh |= (uint64_t)o->p[i] << (8 * i);
      if (!hdr_end || o->len < 8 || oh > o->len - 8) return 0;
      b->len = hdr_end;
      buf_insert(b, hdr_end, o->p + 8 + oh, o->len - 8 - (size_t)oh);
      return 0;
    }
  }
}

/* Large inputs go at the end of one persistent allocation instead of a fresh one per run: a
 * fresh mapping of ~700 KB page-faults on every copy and costs more than the parse. The end of the
 * input is the end of the allocation (ASan sees reads past it), and with ASan the unused front is
 * poisoned (so are reads before it). */
#define BIG_INPUT ((size_t)64 << 10)
static uint8_t *big;
static size_t big_cap;

static void run_one(const uint8_t *p, size_t len) {
  uint8_t *copy, *fresh = NULL;
  if (len >= BIG_INPUT) {
    if (len > big_cap) {
      free(big);
      big_cap = len + len / 2;
      big = malloc(big_cap);
      if (!big) {
        fprintf(stderr, "fuzz: out of memory\n");
        exit(1);
      }
    }
    copy = big + big_cap - len;
    if (__asan_poison_memory_region) __asan_poison_memory_region(big, big_cap - len);
  } else {
    copy = fresh = malloc(len ? len : 1);
    if (!copy) {
      fprintf(stderr, "fuzz: out of memory\n");
      exit(1);
    }
  }
  if (len) memcpy(copy, p, len);
  cur_p = copy;
  cur_len = len;
  aoq_err_clear();
  LLVMFuzzerTestOneInput(copy, len);
  cur_p = NULL;
  if (!fresh && __asan_unpoison_memory_region) __asan_unpoison_memory_region(big, big_cap - len);
  free(fresh);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *to, const char *prog) {
  fprintf(to,
          "usage: %s [--seconds S] [--seed N] [--iterations N]\n"
          "         [--max-len BYTES] [--crash-dir DIR] [--replay] [--quiet] [--verbose] PATH...\n"
          "Mutates the seed files (or folders of them) in PATH and runs the target for S\n"
          "seconds (default 10). --replay runs each file once and exits; --verbose prints\n"
          "each new outcome.\n",
          prog);
}

int main(int argc, char **argv) {
  double seconds = 10;
  uint64_t seed = 1;
  unsigned long long max_iter = 0;
  size_t max_len = (size_t)4 << 20;
  const char *crash_dir = ".";
  int replay = 0, quiet = 0, verbose = 0;
  const char *paths[256];
  int npaths = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout, argv[0]);
      return 0;
    } else if (!strcmp(a, "--replay")) {
      replay = 1;
    } else if (!strcmp(a, "--quiet")) {
      quiet = 1;
    } else if (!strcmp(a, "--verbose")) {
      verbose = 1;
    } else if (v && !strcmp(a, "--seconds")) {
      seconds = strtod(v, NULL), i++;
    } else if (v && !strcmp(a, "--seed")) {
      seed = strtoull(v, NULL, 0), i++;
    } else if (v && !strcmp(a, "--iterations")) {
      max_iter = strtoull(v, NULL, 0), i++;
    } else if (v && !strcmp(a, "--max-len")) {
      max_len = (size_t)strtoull(v, NULL, 0), i++;
    } else if (v && !strcmp(a, "--crash-dir")) {
      crash_dir = v, i++;
    } else if (a[0] == '-') {
      fprintf(stderr, "fuzz: unknown or incomplete option %s\n", a);
      usage(stderr, argv[0]);
      return 2;
    } else if (npaths < 256) {
      paths[npaths++] = a;
    }
  }
  if (seconds <= 0 || max_len < 8) {
    fprintf(stderr, "fuzz: --seconds must be > 0 and --max-len >= 8\n");
    return 2;
  }
  /* crash-<target>-<seed>.bin: fuzz_config_driver -> crash-config-1.bin */
  const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  size_t plen = strlen(prog);
  if (!strncmp(prog, "fuzz_", 5)) prog += 5, plen -= 5;
  if (plen > 7 && !strcmp(prog + plen - 7, "_driver")) plen -= 7;
  snprintf(crash_path, sizeof crash_path, "%s/crash-%.*s-%llu.bin", crash_dir, (int)plen, prog,
           (unsigned long long)seed);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_crash);
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGILL, on_signal);
  signal(SIGFPE, on_signal);
  signal(SIGABRT, on_signal);
  if (fuzz_dict) dict = fuzz_dict;
  for (ndict = 0; dict[ndict]; ndict++) {
  }
  prefixed = &fuzz_length_prefixed != NULL && fuzz_length_prefixed;
  rng = seed * 0x9e3779b97f4a7c15ull + 0x1234567;
  if (!rng) rng = 1;

  if (replay) {
    for (int i = 0; i < npaths; i++) {
      npool = 0;
      if (load_path(paths[i], MAX_SEED_FILE) <= 0) return 2;
      for (size_t k = 0; k < npool; k++) run_one(pool[k].p, pool[k].len);
      printf("fuzz: replayed %s (%zu inputs)\n", paths[i], npool);
      for (size_t k = 0; k < npool; k++) free(pool[k].p);
    }
    return 0;
  }

  for (int i = 0; i < npaths; i++) {
    if (load_path(paths[i], max_len) < 0) return 2;
  }
  if (fuzz_builtin_seeds) fuzz_builtin_seeds(pool_add);
  nseeds = npool;
  /* Run every seed once and record its outcome. */
  unsigned long long runs = 0, accepted = 0, added = 0;
  for (size_t i = 0; i < nseeds; i++) {
    run_one(pool[i].p, pool[i].len);
    runs++;
    int ok = aoq_last_error()[0] == 0;
    accepted += (unsigned long long)ok;
    seen_add(outcome_hash(ok));
  }
  buf b = {0};
  double t0 = now_s(), last_report = t0;
  for (;;) {
    if ((runs & 63) == 0) {
      double t = now_s();
      if (t - t0 >= seconds) break;
      if (!quiet && t - last_report >= 10) {
        fprintf(stderr, "fuzz: %llu runs, %.0f s, pool %zu, outcomes %zu\n", runs, t - t0, npool,
                nseen);
        last_report = t;
      }
    }
    if (max_iter && runs >= max_iter) break;
    /* prefer small inputs: they run faster and their mutations all land in the header */
    const input *src = &pool[rnd_below(npool)], *alt = &pool[rnd_below(npool)];
    if (alt->len < src->len && rnd_below(4) != 0) src = alt;
    buf_set(&b, src->p, src->len);
    uint64_t h0 = get_hlen(&b);
    int consistent = prefixed && b.len >= 8 && h0 <= b.len - 8;
    long delta = 0;
    size_t nmut = 1 + rnd_below(rnd_below(2) ? 2 : 8);
    for (size_t k = 0; k < nmut; k++) delta += mutate_once(&b);
    /* Keep the length prefix in step with header edits most of the time. */
    if (consistent && delta != 0 && rnd_below(4) != 0) set_hlen(&b, h0 + (uint64_t)delta);
    if (b.len > max_len) b.len = max_len;
    run_one(b.p, b.len);
    runs++;
    int ok = aoq_last_error()[0] == 0;
    accepted += (unsigned long long)ok;
    /* New outcomes join the pool; so does an occasional accepted mutant (new valid shapes). */
    int fresh = seen_add(outcome_hash(ok));
    if (fresh && verbose)
      fprintf(stderr, "fuzz: new outcome: %s\n", ok ? "accepted" : aoq_last_error());
    if (fresh || (ok && rnd_below(64) == 0)) added += (unsigned long long)pool_add(b.p, b.len);
  }
  double el = now_s() - t0;
  printf(
      "fuzz: %llu runs in %.1f s (%.0f/s), seed %llu, %zu seeds, %llu accepted, %zu outcomes, "
      "%llu inputs added, pool %zu\n",
      runs, el, el > 0 ? runs / el : 0.0, (unsigned long long)seed, nseeds, accepted, nseen, added,
      npool);
  for (size_t i = 0; i < npool; i++) free(pool[i].p);
  free(big);
  free(b.p);
  return 0;
}
