/*
 * file.h — reading a small whole file (a JSON config, an index, an overrides list) into memory.
 */
#ifndef AOQ_BASE_FILE_H
#define AOQ_BASE_FILE_H

#include <stddef.h>

#include "aoq/aoq.h"

/* Reads the regular file at path into a NUL-terminated malloc'ed buffer (*out, caller frees) of
 * *len bytes (len may be NULL). Errors, each with the path in the detail: AOQ_ENOTFOUND (no such
 * file), AOQ_EIO (not a regular file, open or read failure), AOQ_EFORMAT (larger than limit
 * bytes), AOQ_ENOMEM (the allocation goes through aoq_fault_hit). */
aoq_status aoq_file_read(const char *path, size_t limit, char **out, size_t *len);

#endif
