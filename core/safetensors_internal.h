/*
 * safetensors_internal.h — what the reader (safetensors.c) and the writer (safetensors_write.c)
 * share: limits, the metadata entry, and allocation through the fault-injection hook.
 */
#ifndef AOQ_CORE_SAFETENSORS_INTERNAL_H
#define AOQ_CORE_SAFETENSORS_INTERNAL_H

#include <stddef.h>

#include "core/safetensors.h"

/* The reference implementation refuses headers above 100 MB; so do we (a real header is KBs). */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define ST_MAX_INDEX ((size_t)64 * 1024 * 1024)
/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0
#define ST_NAME_SHOWN 96

typedef struct st_meta {
  char *key;
  char *value;
} st_meta;

/* Allocation goes through the fault-injection hook so that tests can fail the n-th allocation. */
void *aoq_st_malloc(size_t n);
void *aoq_st_calloc(size_t n, size_t size);
char *aoq_st_strdup(const char *s);
/* qsort comparator of st_meta by key. */
int aoq_st_cmp_meta_key(const void *a, const void *b);

#endif
