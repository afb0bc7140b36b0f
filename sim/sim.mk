# SPDX-License-Identifier: GPL-2.0-only
# sim/: the simulated Xen host, linked with the engine into one static
# library that the C tests, the benchmark and the Python extension use.
SIM_SRCS := $(sort $(wildcard sim/*.c))
SIM_OBJS := $(SIM_SRCS:%.c=$(BUILD)/%.o)
SIM_HDRS := sim/sim.h sim/sim_internal.h sim/xen_compat.h core/memswap.h core/private.h

$(BUILD)/sim/%.o: sim/%.c $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libmemswapsim.a: $(SIM_OBJS) $(CORE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^
