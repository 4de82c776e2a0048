/*
 * sched.h — the scheduler thread: owns the models (models.h) and runs aoq_model_step in a loop
 * over the live sequences of all sessions (continuous batching: prefill chunks join decode
 * steps; batch.h decides who joins), and serves every other model-touching request (matmul,
 * forward, tokenize, models, load/unload/reconfigure) between two steps.
 *
 * The server thread hands work over with aoqd_sched_submit (a locked queue + condition variable);
 * the scheduler answers through its own ZeroMQ PUSH socket connected to the server's inproc PULL
 * socket. Each outgoing message is two frames: an aoqd_addr (which socket, which peer, which
 * request type) and the packed Reply.
 */
#ifndef AOQD_SCHED_H
#define AOQD_SCHED_H

#include <stdint.h>

#include "daemon/bufreg.h"
#include "daemon/metrics.h"
#include "daemon/models.h"
#include "proto/aoq.pb-c.h"

/* Where a reply goes. Sent as the first frame on the inproc pipe. */
typedef struct aoqd_addr {
  uint8_t sock; /* AOQD_SOCK_* */
  uint8_t type; /* request type index (wire.h) for the tx counters */
  uint8_t rid_len;
  uint8_t rid[255]; /* ZeroMQ routing id of the peer */
  uint64_t req_id;
} aoqd_addr;

enum { AOQD_SOCK_IPC = 0, AOQD_SOCK_TCP = 1, AOQD_SOCK_ADMIN = 2, AOQD_NSOCK = 3 };

typedef enum aoqd_job_kind {
  AOQD_JOB_REQUEST = 0,  /* a client Request (generate, forward, matmul, tokenize, ...) */
  AOQD_JOB_SESSION_GONE, /* cancel every sequence of `session`, no reply */
  AOQD_JOB_ADMIN,        /* load / unload / reconfigure */
} aoqd_job_kind;

typedef struct aoqd_job {
  aoqd_job_kind kind;
  aoqd_addr addr;
  uint64_t session;
  int tenant;
  Aoq__Request *req;     /* owned (aoq__request__free_unpacked) */
  aoqd_buffer *in, *out; /* references held for the request, or NULL */
  struct aoqd_job *next;
} aoqd_job;

typedef struct aoqd_sched aoqd_sched;

typedef struct aoqd_sched_opts {
  void *zctx;                 /* ZeroMQ context shared with the server */
  const char *reply_endpoint; /* inproc endpoint the server's PULL socket is bound to */
  aoqd_metrics *mx;           /* borrowed */
  aoqd_models *models;        /* borrowed; owned by the scheduler thread once started */
  int max_batch_tokens;       /* token budget per step (0 = 512) */
} aoqd_sched_opts;

aoq_status aoqd_sched_start(const aoqd_sched_opts *o, aoqd_sched **out);
/* Takes ownership of j (its request and buffer references). Never blocks on the model. */
void aoqd_sched_submit(aoqd_sched *s, aoqd_job *j);
/* 1 when no sequence is live or queued and no background job runs (drain is complete). */
int aoqd_sched_idle(aoqd_sched *s);
/* Stops the thread (live sequences are cancelled) and frees the scheduler; models stay. */
void aoqd_sched_stop(aoqd_sched *s);
/* Frees a job that was not submitted. */
void aoqd_job_free(aoqd_job *j);

#endif
