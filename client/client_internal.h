/*
 * client_internal.h — libaoq's private structs and the request helpers its files share.
 * A handle is used by one thread at a time (aoq.h).
 */
#ifndef AOQ_CLIENT_INTERNAL_H
#define AOQ_CLIENT_INTERNAL_H

#include <stdint.h>

#include "aoq/aoq.h"
#include "proto/aoq.pb-c.h"
#include "proto/shm.h"

struct aoq_buffer {
  aoq_client *c;
  aoq_shm shm;
  uint64_t id;
  int device;                        /* device memory: shm is empty but for its size */
  uint8_t ipc[AOQ_IPC_HANDLE_BYTES]; /* device buffers: the IPC handle */
  struct aoq_buffer *next;           /* the client's list, unmapped at disconnect */
};

struct aoq_client {
  void *ctx, *sock;
  char endpoint[600];
  uint64_t next_id, session;
  char tenant[64];
  char err[512];
  int timeout_ms, admin;
  aoq_buffer *buffers;
};

/* Records the detail on c (and the thread) and returns s. */
aoq_status aoqc_fail(aoq_client *c, aoq_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends req (assigning its id) and waits for its reply of case `want`; an Error reply becomes the
 * status. *out (if not NULL) is freed by the caller with aoq__reply__free_unpacked. */
aoq_status aoqc_call(aoq_client *c, Aoq__Request *req, Aoq__Reply__BodyCase want, Aoq__Reply **out);
/* Receives the next reply to request id (others are dropped). */
aoq_status aoqc_recv(aoq_client *c, uint64_t id, int timeout_ms, Aoq__Reply **out);
/* Unmaps b and frees it without telling the daemon (disconnect path). */
void aoqc_buffer_release(aoq_buffer *b);

#endif
