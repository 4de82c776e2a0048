/*
 * bufreg.h — the daemon's registry of shared buffers (Triton-style shared-memory regions).
 *
 * A buffer is a POSIX shm object mapped into the daemon, owned by one session. Requests name it by
 * id; naming a buffer of another session is AOQ_EPERM. Buffers are reference counted: the
 * registry holds one reference, and every request in flight that uses the buffer holds one, so a
 * client that unregisters (or dies) while the scheduler still reads its buffer cannot pull the
 * mapping away underneath it. The last reference unmaps (and unlinks daemon-created objects).
 *
 * Threading: registry calls (add/find/remove) come from the server thread only; aoqd_buffer_ref
 * and aoqd_buffer_unref may be called from any thread.
 */
#ifndef AOQD_BUFREG_H
#define AOQD_BUFREG_H

#include <stdatomic.h>
#include <stdint.h>

#include "devices/device.h"
#include "proto/shm.h"

typedef struct aoqd_buffer {
  uint64_t id;
  uint64_t session; /* owner */
  int tenant;       /* owner's tenant index */
  aoq_shm shm;
  int daemon_created;  /* unlink the name on the last unref */
  int host_registered; /* aoq_dev_host_register succeeded */
  aoq_device *dev;     /* borrowed, outlives every buffer */
  atomic_int refs;
} aoqd_buffer;

typedef struct aoqd_bufreg aoqd_bufreg;

aoq_status aoqd_bufreg_create(aoq_device *dev, int max_per_session, aoqd_bufreg **out);
/* Drops the registry's reference of every buffer, then frees the registry. */
void aoqd_bufreg_free(aoqd_bufreg *r);

/* Maps the client's shm object `name` of `size` bytes for session/tenant; owner_uid as in
 * aoq_shm_map. AOQ_EQUOTA past max_per_session buffers of that session. */
aoq_status aoqd_bufreg_register(aoqd_bufreg *r, uint64_t session, int tenant, const char *name,
                                uint64_t size, long owner_uid, aoqd_buffer **out);
/* Creates (and maps) a new shm object for the session; the client maps it by name. */
aoq_status aoqd_bufreg_create_buffer(aoqd_bufreg *r, uint64_t session, int tenant, uint64_t size,
                                     aoqd_buffer **out);
/* Looks up id for session and checks that [offset, offset+bytes) lies inside it. Returns a new
 * reference (caller unrefs). AOQ_ENOTFOUND (no such id), AOQ_EPERM (another session's buffer),
 * AOQ_ESHAPE (range outside the buffer). */
aoq_status aoqd_bufreg_acquire(aoqd_bufreg *r, uint64_t session, uint64_t id, uint64_t offset,
                               uint64_t bytes, aoqd_buffer **out);
/* Unregisters one buffer of the session (same errors as acquire). */
aoq_status aoqd_bufreg_remove(aoqd_bufreg *r, uint64_t session, uint64_t id);
/* Unregisters every buffer of the session; returns how many. */
int aoqd_bufreg_remove_session(aoqd_bufreg *r, uint64_t session);

/* Totals for status: buffers and bytes, overall and for one tenant (tenant < 0: all). */
void aoqd_bufreg_usage(const aoqd_bufreg *r, int tenant, int *count, uint64_t *bytes);

void aoqd_buffer_ref(aoqd_buffer *b);
void aoqd_buffer_unref(aoqd_buffer *b);

#endif
