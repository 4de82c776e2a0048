/*
 * xpu_cl.h — the OpenCL runtime of the kernels/cl ops: a device that runs the very kernels of the
 * Level Zero backend from their OpenCL C source on any OpenCL implementation (PoCL on the CPU
 * here). It exists to test those kernels and xpu_ops.c where no Intel GPU is present
 * (tests/unit/test_opencl_*.c, `aoq-bench clgemv`); the daemon never opens it.
 *
 * Memory: OpenCL 1.2 buffers without SVM; a "device pointer" is the host address backing a
 * CL_MEM_USE_HOST_PTR buffer, never dereferenced by aoq, and mapped back to (cl_mem, offset) for
 * copies and kernel arguments. Host<->device copies are synchronous; kernels, d2d copies and
 * memsets are asynchronous on the stream (an in-order queue). No graphs, IPC or host register.
 */
#ifndef AOQ_DEVICES_XPU_XPU_CL_H
#define AOQ_DEVICES_XPU_XPU_CL_H

#include "devices/device.h"

/* Opens the index-th OpenCL device over all platforms (name "opencl:<index>"). AOQ_ENODEV when
 * there is no OpenCL platform or no such device; AOQ_EDEVICE when a kernel fails to build (the
 * build log is in the detail). The caller frees with aoq_device_close. */
aoq_status aoq_opencl_device_create(int index, aoq_device **out);

#endif
