/*
 * spv_order.c — build-time tool: rewrites a SPIR-V module so that the blocks of every function
 * appear in reverse post-order of its control-flow graph.
 *
 * Why: SPIR-V requires each block to come after its dominators; llvm-spirv-14 emits LLVM's block
 * order as is, and clang's -O2 loop rotation sometimes places a loop's exit block before the loop
 * body (spirv-val: "Block ... appears in the binary before its dominator"). Reverse post-order
 * always satisfies the rule; nothing else in the module changes (phis name their predecessors, so
 * they do not care about order).
 *
 * usage: aoq_spv_order in.spv out.spv     (exit status 0, or 1 with a message on stderr)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  OP_FUNCTION = 54,
  OP_FUNCTION_END = 56,
  OP_LABEL = 248,
  OP_BRANCH = 249,
  OP_BRANCH_CONDITIONAL = 250,
  OP_SWITCH = 251,
  OP_KILL = 252,
  OP_RETURN = 253,
  OP_RETURN_VALUE = 254,
  OP_UNREACHABLE = 255,
};

typedef struct block {
  size_t begin, end; /* word range [begin, end) */
  uint32_t label;
  uint32_t succ[64];
  int n_succ;
  int seen;
} block;

static int is_terminator(uint32_t op) {
  return op == OP_BRANCH || op == OP_BRANCH_CONDITIONAL || op == OP_SWITCH || op == OP_KILL ||
         op == OP_RETURN || op == OP_RETURN_VALUE || op == OP_UNREACHABLE;
}

static int find(const block *b, int n, uint32_t label) {
  for (int i = 0; i < n; i++)
    if (b[i].label == label) return i;
  return -1;
}

/* Appends the blocks of one function in reverse post-order to out (iterative DFS). */
static int order(const uint32_t *w, block *b, int n, uint32_t *out, size_t *o) {
  int *post = malloc(sizeof(int) * (size_t)n), np = 0;
  int *stack = malloc(sizeof(int) * (size_t)n), *edge = malloc(sizeof(int) * (size_t)n), sp = 0;
  if (!post || !stack || !edge) return free(post), free(stack), free(edge), -1;
  stack[sp] = 0, edge[sp++] = 0, b[0].seen = 1;
  while (sp) {
    int v = stack[sp - 1];
    if (edge[sp - 1] < b[v].n_succ) {
      int s = find(b, n, b[v].succ[edge[sp - 1]++]);
      if (s >= 0 && !b[s].seen) b[s].seen = 1, stack[sp] = s, edge[sp++] = 0;
    } else {
      post[np++] = v;
      sp--;
    }
  }
  for (int i = np - 1; i >= 0; i--) {
    memcpy(out + *o, w + b[post[i]].begin, 4 * (b[post[i]].end - b[post[i]].begin));
    *o += b[post[i]].end - b[post[i]].begin;
  }
  for (int i = 0; i < n; i++) /* unreachable blocks keep their relative order, at the end */
    if (!b[i].seen) {
      memcpy(out + *o, w + b[i].begin, 4 * (b[i].end - b[i].begin));
      *o += b[i].end - b[i].begin;
    }
  free(post), free(stack), free(edge);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: aoq_spv_order in.spv out.spv\n");
    return 1;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) return perror(argv[1]), 1;
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (bytes < 20 || bytes % 4) return fprintf(stderr, "%s: not a SPIR-V module\n", argv[1]), 1;
  size_t nw = (size_t)bytes / 4;
  uint32_t *w = malloc((size_t)bytes), *out = malloc((size_t)bytes);
  size_t cap = 4096;
  block *blocks = malloc(sizeof *blocks * cap);
  if (!w || !out || !blocks || fread(w, 4, nw, f) != nw || w[0] != 0x07230203u) {
    fprintf(stderr, "%s: unreadable or not a little-endian SPIR-V module\n", argv[1]);
    return 1;
  }
  fclose(f);
  size_t i = 5, o = 5;
  memcpy(out, w, 20);
  int n = 0, in_fn = 0;
  block *cur = NULL;
  while (i < nw) {
    uint32_t op = w[i] & 0xffffu, len = w[i] >> 16;
    if (len == 0 || i + len > nw)
      return fprintf(stderr, "%s: bad instruction at word %zu\n", argv[1], i), 1;
    if (op == OP_FUNCTION) in_fn = 1, n = 0, cur = NULL;
    if (!in_fn || (op != OP_LABEL && !cur && op != OP_FUNCTION_END)) {
      memcpy(out + o, w + i, 4 * len); /* module-level code, or a function's header/parameters */
      o += len;
    } else if (op == OP_LABEL) {
      if ((size_t)n == cap) {
        cap *= 2;
        block *nb = realloc(blocks, sizeof *blocks * cap);
        if (!nb) return fprintf(stderr, "out of memory\n"), 1;
        blocks = nb;
      }
      cur = &blocks[n++];
      memset(cur, 0, sizeof *cur);
      cur->begin = i, cur->label = w[i + 1];
    } else if (op == OP_FUNCTION_END) {
      if (n && order(w, blocks, n, out, &o)) return fprintf(stderr, "out of memory\n"), 1;
      memcpy(out + o, w + i, 4 * len);
      o += len;
      in_fn = 0, cur = NULL;
    }
    if (cur && is_terminator(op)) {
      if (op == OP_BRANCH) cur->succ[cur->n_succ++] = w[i + 1];
      if (op == OP_BRANCH_CONDITIONAL)
        cur->succ[0] = w[i + 2], cur->succ[1] = w[i + 3], cur->n_succ = 2;
      if (op == OP_SWITCH) /* default, then (literal, label) pairs; literals that are not labels
                              of this function are skipped when the DFS looks them up */
        for (uint32_t a = 2; a < len && cur->n_succ < 64; a++) cur->succ[cur->n_succ++] = w[i + a];
      cur->end = i + len;
      cur = NULL;
    }
    i += len;
  }
  if (o != nw) return fprintf(stderr, "%s: lost words (%zu of %zu)\n", argv[1], o, nw), 1;
  FILE *g = fopen(argv[2], "wb");
  if (!g || fwrite(out, 4, o, g) != o || fclose(g)) return perror(argv[2]), 1;
  free(w), free(out), free(blocks);
  return 0;
}
