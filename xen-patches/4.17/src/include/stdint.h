/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <stdint.h> for the engine's freestanding header core/memswap.h inside
 * the hypervisor (built with -nostdinc): Xen's own fixed-width types.
 */
#ifndef MEMSWAP_XEN_STDINT_H
#define MEMSWAP_XEN_STDINT_H
#include <xen/types.h>
#endif
