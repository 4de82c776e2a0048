/* core.c — identity of the core layer. */
#include "aoq/aoq.h"

const char *aoq_core_build_info(void) { return "aoq " AOQ_VERSION_STRING " core"; }
