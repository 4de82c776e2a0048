/*
 * bufreg.h — the daemon's registry of shared buffers (Triton-style shared-memory regions).
 *
 * A buffer is a POSIX shm object mapped into the daemon, owned by one session. Requests name it by
 * id; naming a buffer of another session is AOQ_EPERM. Buffers are reference counted: the
 * registry holds one reference, and every request in flight that uses the buffer holds one, so a
 * client that unregisters (or dies) while the scheduler still reads its buffer cannot pull the
 * mapping away underneath it. The last reference unmaps (and unlinks daemon-created objects).
 *
 * A device buffer is device memory of the daemon's device, shared through IPC (AOQ_CAP_IPC):
 * either the daemon allocated it and exported its handle (create_device), or the client allocated
 * and exported it and the daemon imported the handle (register_ipc). Imports are cached per handle:
 * registering the same allocation twice opens it once; the last buffer using an import closes it.
 * For device buffers shm.size is the buffer's size, shm.base is NULL and dptr is the memory.
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
  int device;               /* device memory (dptr), not shm */
  void *dptr;               /* device buffers: the daemon's pointer to the memory */
  aoq_ipc_handle ipc;       /* device buffers: the handle (exported, or the client's) */
  struct aoqd_ipc_map *map; /* registered device buffers: the cached import */
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
/* Allocates `size` bytes (zeroed) on the registry's device and exports them; the client opens
 * b->ipc. AOQ_EUNSUPPORTED when the device lacks AOQ_CAP_IPC (e.g. the CPU backend). */
aoq_status aoqd_bufreg_create_device(aoqd_bufreg *r, uint64_t session, int tenant, uint64_t size,
                                     aoqd_buffer **out);
/* Imports the client's IPC handle (once per distinct handle: cached) as a buffer of `size` bytes.
 * AOQ_EUNSUPPORTED (no AOQ_CAP_IPC), AOQ_EINVAL (a handle of this daemon's own buffer, or one the
 * device refuses: garbage, a freed allocation), AOQ_ESHAPE (size beyond the allocation). */
aoq_status aoqd_bufreg_register_ipc(aoqd_bufreg *r, uint64_t session, int tenant,
                                    const aoq_ipc_handle *h, uint64_t size, aoqd_buffer **out);
/* Looks up id for session and checks that [offset, offset+bytes) lies inside it. Returns a new
 * reference (caller unrefs). AOQ_ENOTFOUND (no such id), AOQ_EPERM (another session's buffer),
 * AOQ_ESHAPE (range outside the buffer). */
aoq_status aoqd_bufreg_acquire(aoqd_bufreg *r, uint64_t session, uint64_t id, uint64_t offset,
                               uint64_t bytes, aoqd_buffer **out);
/* Unregisters one buffer of the session (same errors as acquire). */
aoq_status aoqd_bufreg_remove(aoqd_bufreg *r, uint64_t session, uint64_t id);
/* Unregisters every buffer of the session; returns how many. */
int aoqd_bufreg_remove_session(aoqd_bufreg *r, uint64_t session);

/* Totals for status: shared (shm) buffers and bytes, overall and for one tenant (tenant < 0: all).
 */
void aoqd_bufreg_usage(const aoqd_bufreg *r, int tenant, int *count, uint64_t *bytes);
/* The same for device buffers. */
void aoqd_bufreg_device_usage(const aoqd_bufreg *r, int tenant, int *count, uint64_t *bytes);
/* Distinct IPC imports open now (for tests and status). */
int aoqd_bufreg_imports(aoqd_bufreg *r);

void aoqd_buffer_ref(aoqd_buffer *b);
void aoqd_buffer_unref(aoqd_buffer *b);

#endif
