/*
 * server.h — aoqd's socket loop: the ROUTER sockets (ipc clients, optional CURVE tcp clients,
 * the admin ipc socket), sessions and their tenants, the buffer registry, request dispatch (one
 * table: request type -> handler, who may send it), dead-peer detection through socket monitors,
 * and the forwarding of the scheduler's replies.
 *
 * Threading: everything here runs on the server (main) thread, except the fields marked atomic,
 * which signal handlers and the scheduler may touch.
 */
#ifndef AOQD_SERVER_H
#define AOQD_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "base/error.h"
#include "daemon/args.h"
#include "daemon/bufreg.h"
#include "daemon/curve.h"
#include "daemon/metrics.h"
#include "daemon/models.h"
#include "daemon/sched.h"

typedef struct aoqd_session {
  uint64_t id;
  uint8_t sock, rid_len;
  uint8_t rid[255];
  int fd;   /* the connection's file descriptor in libzmq (ZMQ_SRCFD), -1 if unknown */
  long uid; /* peer uid (SO_PEERCRED) for ipc, -1 for tcp */
  long pid;
  int tenant;
  char client[64];
} aoqd_session;

typedef struct aoqd_server {
  const aoqd_opts *opts;
  void *zctx;
  void *sock[AOQD_NSOCK], *mon[AOQD_NSOCK], *pull;
  char ipc_path[2][512]; /* socket files to unlink at exit */
  aoqd_session *sessions;
  int n_sessions, cap_sessions;
  uint64_t next_session;
  int stale_fd[AOQD_NSOCK][16]; /* fds whose DISCONNECTED event is known to be stale */
  aoqd_bufreg *reg;
  aoqd_sched *sched;
  aoqd_models *models;
  aoqd_metrics *mx;
  aoqd_curve *curve;
  aoq_device *dev;
  double t_start;
  int draining;       /* no new generate/forward */
  int exit_when_idle; /* shutdown / SIGTERM: exit once drained */
  uint8_t *rxbuf;
} aoqd_server;

/* Set by signal handlers; read by the loop. */
extern volatile sig_atomic_t aoqd_sig_term, aoqd_sig_hup;

/* Binds every socket, starts the scheduler and ZAP threads. The models are loaded already. */
aoq_status aoqd_server_init(aoqd_server *sv, const aoqd_opts *o, aoq_device *dev,
                            aoqd_models *models, aoqd_metrics *mx);
/* Serves until shutdown; returns the process exit code. */
int aoqd_server_run(aoqd_server *sv);
/* Stops threads, closes sockets, unlinks socket files, frees sessions and buffers. */
void aoqd_server_fini(aoqd_server *sv);

/* Sends a reply built on the server thread (admin commands, session and buffer requests). */
void aoqd_server_reply(aoqd_server *sv, const aoqd_addr *a, Aoq__Reply *r);
void aoqd_server_error(aoqd_server *sv, const aoqd_addr *a, aoq_status st, const char *fmt, ...)
    AOQ_PRINTF(4, 5);

#endif
