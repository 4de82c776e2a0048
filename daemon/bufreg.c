/* bufreg.c — shared-buffer registry with per-session ownership and reference counts (bufreg.h). */
#include "daemon/bufreg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* One opened IPC handle, shared by every buffer that registered it. */
typedef struct aoqd_ipc_map {
  aoq_ipc_handle h;
  void *ptr;
  size_t bytes; /* the allocation's size */
  int users;    /* buffers holding it (under reg->mu) */
  struct aoqd_bufreg *reg;
  struct aoqd_ipc_map *next;
} aoqd_ipc_map;

struct aoqd_bufreg {
  aoq_device *dev;
  int max_per_session;
  uint64_t next_id;
  aoqd_buffer **items;
  int n, cap;
  /* The import cache: the last unref of a buffer can come from the scheduler thread. */
  pthread_mutex_t mu;
  aoqd_ipc_map *maps;
};

aoq_status aoqd_bufreg_create(aoq_device *dev, int max_per_session, aoqd_bufreg **out) {
  aoqd_bufreg *r = calloc(1, sizeof *r);
  if (!r) return aoq_err(AOQ_ENOMEM, "buffer registry");
  r->dev = dev;
  r->max_per_session = max_per_session > 0 ? max_per_session : 64;
  r->next_id = 1;
  pthread_mutex_init(&r->mu, NULL);
  *out = r;
  return AOQ_OK;
}

void aoqd_buffer_ref(aoqd_buffer *b) {
  atomic_fetch_add(&b->refs, 1);
}

static void map_release(aoqd_ipc_map *m) {
  aoqd_bufreg *r = m->reg;
  pthread_mutex_lock(&r->mu);
  int last = --m->users == 0;
  if (last)
    for (aoqd_ipc_map **p = &r->maps; *p; p = &(*p)->next)
      if (*p == m) {
        *p = m->next;
        break;
      }
  pthread_mutex_unlock(&r->mu);
  if (!last) return;
  if (aoq_dev_ipc_close(r->dev, m->ptr) != AOQ_OK)
    AOQ_WARN("closing an imported device buffer failed|error=\"%s\"", aoq_last_error());
  free(m);
}

void aoqd_buffer_unref(aoqd_buffer *b) {
  if (!b || atomic_fetch_sub(&b->refs, 1) != 1) return;
  if (b->device) {
    if (b->map)
      map_release(b->map);
    else
      aoq_dev_free(b->dev, b->dptr);
    free(b);
    return;
  }
  if (b->host_registered) aoq_dev_host_unregister(b->dev, b->shm.base);
  aoq_shm_close(&b->shm, b->daemon_created);
  free(b);
}

void aoqd_bufreg_free(aoqd_bufreg *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) aoqd_buffer_unref(r->items[i]);
  free(r->items);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static int session_count(const aoqd_bufreg *r, uint64_t session) {
  int c = 0;
  for (int i = 0; i < r->n; i++) c += r->items[i]->session == session;
  return c;
}

static aoq_status grow(aoqd_bufreg *r) {
  if (r->n == r->cap) {
    int cap = r->cap ? 2 * r->cap : 64;
    aoqd_buffer **items = realloc(r->items, (size_t)cap * sizeof *items);
    if (!items) return aoq_err(AOQ_ENOMEM, "buffer registry growth");
    r->items = items;
    r->cap = cap;
  }
  return AOQ_OK;
}

/* A new entry of the session's tenant with the next id (one reference), not yet listed. */
static aoq_status new_entry(aoqd_bufreg *r, uint64_t session, int tenant, aoqd_buffer **out) {
  AOQ_TRY(grow(r));
  aoqd_buffer *b = calloc(1, sizeof *b);
  if (!b) return aoq_err(AOQ_ENOMEM, "buffer entry");
  b->id = r->next_id++;
  b->session = session;
  b->tenant = tenant;
  b->dev = r->dev;
  atomic_init(&b->refs, 1);
  *out = b;
  return AOQ_OK;
}

static aoq_status add(aoqd_bufreg *r, uint64_t session, int tenant, aoq_shm *shm, int created,
                      aoqd_buffer **out) {
  aoqd_buffer *b = NULL;
  AOQ_TRY(new_entry(r, session, tenant, &b));
  b->shm = *shm;
  b->daemon_created = created;
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

static aoq_status device_check(aoqd_bufreg *r, uint64_t session, uint64_t size) {
  if (!r->dev || !aoq_device_has(r->dev, AOQ_CAP_IPC))
    return aoq_err(AOQ_EUNSUPPORTED,
                   "device buffers need a daemon device with IPC (AOQ_CAP_IPC, e.g. cuda:N); this "
                   "daemon runs on %s",
                   r->dev ? aoq_device_name(r->dev) : "no device");
  if (session_count(r, session) >= r->max_per_session)
    return aoq_err(AOQ_EQUOTA, "session already holds %d buffers (the limit)", r->max_per_session);
  if (size == 0 || size > ((uint64_t)1 << 40))
    return aoq_err(AOQ_EINVAL, "buffer size %llu not in 1..2^40", (unsigned long long)size);
  return AOQ_OK;
}

/* A device buffer entry holding dptr (allocated, or through map). */
static aoq_status add_device(aoqd_bufreg *r, uint64_t session, int tenant, uint64_t size,
                             void *dptr, const aoq_ipc_handle *h, aoqd_ipc_map *map,
                             aoqd_buffer **out) {
  aoqd_buffer *b = NULL;
  AOQ_TRY(new_entry(r, session, tenant, &b));
  b->shm.size = (size_t)size;
  b->device = 1;
  b->dptr = dptr;
  b->ipc = *h;
  b->map = map;
  r->items[r->n++] = b;
  *out = b;
  return AOQ_OK;
}

aoq_status aoqd_bufreg_create_device(aoqd_bufreg *r, uint64_t session, int tenant, uint64_t size,
                                     aoqd_buffer **out) {
  AOQ_TRY(device_check(r, session, size));
  void *p = NULL;
  AOQ_TRY(aoq_dev_alloc(r->dev, (size_t)size, &p));
  aoq_ipc_handle h;
  /* zeroed: the memory may have held another tenant's data */
  aoq_status s = aoq_dev_memset(r->dev, p, 0, (size_t)size, NULL);
  if (s == AOQ_OK) s = aoq_dev_stream_sync(r->dev, NULL);
  if (s == AOQ_OK) s = aoq_dev_ipc_export(r->dev, p, &h);
  if (s == AOQ_OK) s = add_device(r, session, tenant, size, p, &h, NULL, out);
  if (s != AOQ_OK) aoq_dev_free(r->dev, p);
  return s;
}

aoq_status aoqd_bufreg_register_ipc(aoqd_bufreg *r, uint64_t session, int tenant,
                                    const aoq_ipc_handle *h, uint64_t size, aoqd_buffer **out) {
  AOQ_TRY(device_check(r, session, size));
  for (int i = 0; i < r->n; i++)
    if (r->items[i]->device && !r->items[i]->map && !memcmp(&r->items[i]->ipc, h, sizeof *h))
      return aoq_err(AOQ_EINVAL, "the handle is of the daemon's own buffer %llu: name that id",
                     (unsigned long long)r->items[i]->id);
  pthread_mutex_lock(&r->mu);
  aoqd_ipc_map *m = r->maps;
  while (m && memcmp(&m->h, h, sizeof *h)) m = m->next;
  if (m) m->users++; /* held while we check and add */
  pthread_mutex_unlock(&r->mu);
  if (!m) {
    m = calloc(1, sizeof *m);
    if (!m) return aoq_err(AOQ_ENOMEM, "ipc import record");
    m->h = *h;
    m->reg = r;
    aoq_status s = aoq_dev_ipc_import(r->dev, h, &m->ptr);
    if (s != AOQ_OK) {
      free(m);
      return aoq_err(AOQ_EINVAL,
                     "the device refused the IPC handle (garbage, another device's, "
                     "or a freed allocation): %s",
                     aoq_last_error());
    }
    void *base = NULL;
    s = aoq_dev_mem_range(r->dev, m->ptr, &base, &m->bytes);
    if (s == AOQ_OK && base != m->ptr) m->bytes -= (size_t)((uint8_t *)m->ptr - (uint8_t *)base);
    if (s != AOQ_OK) {
      aoq_status keep = s;
      char why[256];
      snprintf(why, sizeof why, "%s", aoq_last_error());
      aoq_dev_ipc_close(r->dev, m->ptr);
      free(m);
      return aoq_err(keep, "imported IPC handle: its size cannot be checked: %s", why);
    }
    m->users = 1;
    pthread_mutex_lock(&r->mu);
    m->next = r->maps;
    r->maps = m;
    pthread_mutex_unlock(&r->mu);
  }
  if (size > m->bytes) {
    map_release(m);
    return aoq_err(AOQ_ESHAPE, "IPC buffer of %llu bytes claimed, the allocation holds %zu",
                   (unsigned long long)size, m->bytes);
  }
  aoq_status s = add_device(r, session, tenant, size, m->ptr, h, m, out);
  if (s != AOQ_OK) map_release(m);
  return s;
}

int aoqd_bufreg_imports(aoqd_bufreg *r) {
  int n = 0;
  pthread_mutex_lock(&r->mu);
  for (aoqd_ipc_map *m = r->maps; m; m = m->next) n++;
  pthread_mutex_unlock(&r->mu);
  return n;
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

static void usage(const aoqd_bufreg *r, int tenant, int device, int *count, uint64_t *bytes) {
  int c = 0;
  uint64_t by = 0;
  for (int i = 0; i < r->n; i++) {
    if (tenant >= 0 && r->items[i]->tenant != tenant) continue;
    if (r->items[i]->device != device) continue;
    c++;
    by += r->items[i]->shm.size;
  }
  *count = c;
  *bytes = by;
}

void aoqd_bufreg_usage(const aoqd_bufreg *r, int tenant, int *count, uint64_t *bytes) {
  usage(r, tenant, 0, count, bytes);
}

void aoqd_bufreg_device_usage(const aoqd_bufreg *r, int tenant, int *count, uint64_t *bytes) {
  usage(r, tenant, 1, count, bytes);
}
