/*
 * curve.h — CURVE security for the TCP endpoint: the server key pair, the allowed client keys
 * (each mapped to a tenant), and a ZAP handler thread that admits only those keys and names the
 * tenant through the ZAP User-Id (read back per message as the "User-Id" property).
 * Every refusal is logged with the peer address. Thread: one ZAP thread per daemon.
 */
#ifndef AOQD_CURVE_H
#define AOQD_CURVE_H

#include <stdint.h>

#include "aoq/aoq.h"
#include "daemon/metrics.h"

typedef struct aoqd_curve aoqd_curve;

/* Reads the key files (see args.h); AOQ_EIO/AOQ_EFORMAT with the file and line. Fails with
 * AOQ_EUNSUPPORTED when libzmq lacks CURVE. */
aoq_status aoqd_curve_load(const char *keys_file, const char *clients_file, aoqd_curve **out);
/* Server secret key (Z85, 40 chars) for ZMQ_CURVE_SECRETKEY. */
const char *aoqd_curve_secret(const aoqd_curve *c);
/* Starts the ZAP handler on zctx (must run before the CURVE socket binds). */
aoq_status aoqd_curve_start(aoqd_curve *c, void *zctx, aoqd_metrics *mx);
/* Stops the handler thread and frees. */
void aoqd_curve_free(aoqd_curve *c);

#endif
