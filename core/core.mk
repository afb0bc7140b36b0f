# SPDX-License-Identifier: GPL-2.0-only
# core/: the swap engine, compiled here for the simulator (the Xen build
# compiles the same file through xen-patches/).
CORE_SRCS := core/memswap.c
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)

$(BUILD)/core/%.o: core/%.c core/memswap.h core/private.h sim/xen_compat.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
