/*
 * admin.h — the admin command table (status, tenants, quota, load, unload, reconfigure, drain,
 * shutdown), the status document (JSON; aoqctl prints it as INFO-style sections or as is), and
 * the settings file read at start and on SIGHUP.
 * Threading: server thread only.
 */
#ifndef AOQD_ADMIN_H
#define AOQD_ADMIN_H

#include "daemon/server.h"

/* Serves one admin request that passed the peer-uid check. Takes ownership of req (it may move
 * to the scheduler for load/unload/reconfigure). */
void aoqd_admin_handle(aoqd_server *sv, const aoqd_addr *a, Aoq__Request *req);
/* The status document, malloc'ed (caller frees). AOQ_ENOMEM. */
aoq_status aoqd_admin_status_json(aoqd_server *sv, char **json);
/* Applies the settings file: lines "quota TENANT [kv_pages=N] [max_seqs=N] [priority=N]",
 * '#' comments. All or nothing: on AOQ_EFORMAT (file:line in the detail) nothing changes. */
aoq_status aoqd_admin_load_conf(aoqd_server *sv, const char *path);

#endif
