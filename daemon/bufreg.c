/* bufreg.c — shared-buffer registry with per-session ownership and reference counts (bufreg.h). */
#include "daemon/bufreg.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct aoqd_bufreg {
  aoq_device *dev;
  int max_per_session;
  uint64_t next_id;
  aoqd_buffer **items;
  int n, cap;
};

aoq_status aoqd_bufreg_create(aoq_device *dev, int max_per_session, aoqd_bufreg **out) {
  aoqd_bufreg *r = calloc(1, sizeof *r);
  if (!r) return aoq_err(AOQ_ENOMEM, "buffer registry");
  r->dev = dev;
  r->max_per_session = max_per_session > 0 ? max_per_session : 64;
  r->next_id = 1;
  *out = r;
  return AOQ_OK;
}

void aoqd_buffer_ref(aoqd_buffer *b) {
  atomic_fetch_add(&b->refs, 1);
}

void aoqd_buffer_unref(aoqd_buffer *b) {
  if (!b || atomic_fetch_sub(&b->refs, 1) != 1) return;
  if (b->host_registered) aoq_dev_host_unregister(b->dev, b->shm.base);
  aoq_shm_close(&b->shm, b->daemon_created);
  free(b);
}

void aoqd_bufreg_free(aoqd_bufreg *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) aoqd_buffer_unref(r->items[i]);
  free(r->items);
  free(r);
}

static int session_count(const aoqd_bufreg *r, uint64_t session) {
  int c = 0;
  for (int i = 0; i < r->n; i++) c += r->items[i]->session == session;
  return c;
}

static aoq_status add(aoqd_bufreg *r, uint64_t session, int tenant, aoq_shm *shm, int created,
                      aoqd_buffer **out) {
  if (r->n == r->cap) {
    int cap = r->cap ? 2 * r->cap : 64;
    aoqd_buffer **items = realloc(r->items, (size_t)cap * sizeof *items);
    if (!items) return aoq_err(AOQ_ENOMEM, "buffer registry growth");
    r->items = items;
    r->cap = cap;
  }
  aoqd_buffer *b = calloc(1, sizeof *b);
  if (!b) return aoq_err(AOQ_ENOMEM, "buffer entry");
  b->id = r->next_id++;
  b->session = session;
  b->tenant = tenant;
  b->shm = *shm;
  b->daemon_created = created;
  b->dev = r->dev;
  atomic_init(&b->refs, 1);
  /* Pinning is an optimisation for GPU copies; a device without it (or that refuses) still works.
   */
  if (r->dev && aoq_device_has(r->dev, AOQ_CAP_HOST_REGISTER) &&
      aoq_dev_host_register(r->dev, b->shm.base, b->shm.size) == AOQ_OK)
    b->host_registered = 1;
  r->items[r->n++] = b;
  *out = b;
  return AOQ_OK;
}

aoq_status aoqd_bufreg_register(aoqd_bufreg *r, uint64_t session, int tenant, const char *name,
                                uint64_t size, long owner_uid, aoqd_buffer **out) {
  if (session_count(r, session) >= r->max_per_session)
    return aoq_err(AOQ_EQUOTA, "session already holds %d buffers (the limit)", r->max_per_session);
  if (size == 0 || size > ((uint64_t)1 << 40))
    return aoq_err(AOQ_EINVAL, "buffer size %llu not in 1..2^40", (unsigned long long)size);
  aoq_shm shm;
  AOQ_TRY(aoq_shm_map(name, (size_t)size, owner_uid, &shm));
  aoq_status s = add(r, session, tenant, &shm, 0, out);
  if (s != AOQ_OK) aoq_shm_close(&shm, 0);
  return s;
}

aoq_status aoqd_bufreg_create_buffer(aoqd_bufreg *r, uint64_t session, int tenant, uint64_t size,
                                     aoqd_buffer **out) {
  if (session_count(r, session) >= r->max_per_session)
    return aoq_err(AOQ_EQUOTA, "session already holds %d buffers (the limit)", r->max_per_session);
  if (size == 0 || size > ((uint64_t)1 << 40))
    return aoq_err(AOQ_EINVAL, "buffer size %llu not in 1..2^40", (unsigned long long)size);
  aoq_shm shm;
  AOQ_TRY(aoq_shm_create((size_t)size, &shm));
  aoq_status s = add(r, session, tenant, &shm, 1, out);
  if (s != AOQ_OK) aoq_shm_close(&shm, 1);
  return s;
}

static int find(const aoqd_bufreg *r, uint64_t id) {
  for (int i = 0; i < r->n; i++)
    if (r->items[i]->id == id) return i;
  return -1;
}

static aoq_status check(const aoqd_bufreg *r, uint64_t session, uint64_t id, int *idx) {
  int i = find(r, id);
  if (i < 0) return aoq_err(AOQ_ENOTFOUND, "no buffer %llu", (unsigned long long)id);
  if (r->items[i]->session != session)
    return aoq_err(AOQ_EPERM, "buffer %llu belongs to another session", (unsigned long long)id);
  *idx = i;
  return AOQ_OK;
}

aoq_status aoqd_bufreg_acquire(aoqd_bufreg *r, uint64_t session, uint64_t id, uint64_t offset,
                               uint64_t bytes, aoqd_buffer **out) {
  int i = -1;
  AOQ_TRY(check(r, session, id, &i));
  aoqd_buffer *b = r->items[i];
  if (offset > b->shm.size || bytes > b->shm.size - offset)
    return aoq_err(AOQ_ESHAPE, "buffer %llu: range [%llu, +%llu) outside its %zu bytes",
                   (unsigned long long)id, (unsigned long long)offset, (unsigned long long)bytes,
                   b->shm.size);
  aoqd_buffer_ref(b);
  *out = b;
  return AOQ_OK;
}

aoq_status aoqd_bufreg_remove(aoqd_bufreg *r, uint64_t session, uint64_t id) {
  int i = -1;
  AOQ_TRY(check(r, session, id, &i));
  aoqd_buffer *b = r->items[i];
  r->items[i] = r->items[--r->n];
  aoqd_buffer_unref(b);
  return AOQ_OK;
}

int aoqd_bufreg_remove_session(aoqd_bufreg *r, uint64_t session) {
  int removed = 0;
  for (int i = 0; i < r->n;) {
    if (r->items[i]->session == session) {
      aoqd_buffer *b = r->items[i];
      r->items[i] = r->items[--r->n];
      aoqd_buffer_unref(b);
      removed++;
    } else {
      i++;
    }
  }
  return removed;
}

void aoqd_bufreg_usage(const aoqd_bufreg *r, int tenant, int *count, uint64_t *bytes) {
  int c = 0;
  uint64_t by = 0;
  for (int i = 0; i < r->n; i++) {
    if (tenant >= 0 && r->items[i]->tenant != tenant) continue;
    c++;
    by += r->items[i]->shm.size;
  }
  *count = c;
  *bytes = by;
}
