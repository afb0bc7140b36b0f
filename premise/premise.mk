# SPDX-License-Identifier: GPL-2.0-only
# premise/: the premise checked on real programs and a real CPU.
#
#   make traces         memory-reference traces of real programs (valgrind lackey),
#                       cached as build/traces/<program>.mtr; a few minutes on 2 cores
#   make validate-llc   the simulator's cache model against cachegrind, program by program
#   make colour-probe   page colouring measured on this machine's CPU (root: pagemap)
#
# The programs and their inputs are defined once, in premise/workloads.py.
PREMISE_PROGRAMS := sqlite xz sort python gcc
TRACE_DIR        := $(BUILD)/traces
TRACE_FILES      := $(PREMISE_PROGRAMS:%=$(TRACE_DIR)/%.mtr)
PREMISE_TOOLS    := $(BUILD)/premise/lackey2trace $(BUILD)/premise/tracetool

.PHONY: deps-premise traces validate-llc colour-probe

# The trace format and its replay are part of the simulator library.
$(BUILD)/sim/trace.o $(BUILD)/sim/llc.o: sim/trace.h

$(BUILD)/premise/%: premise/%.c sim/trace.h $(BUILD)/libmemswapsim.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(BUILD)/libmemswapsim.a -o $@ -lm

$(BUILD)/premise/colour-probe: premise/colour-probe.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -pthread $< -o $@ -lm

# The trace writer is part of the build: the tests write their small traces with it.
build: $(PREMISE_TOOLS)

deps-premise:
	@scripts/install-deps premise

# A trace is captured again when its program's definition or the format
# changes, not when a tool is merely rebuilt.
$(TRACE_DIR)/%.mtr: premise/workloads.py sim/trace.h | $(PREMISE_TOOLS)
	@mkdir -p $(dir $@)
	BUILD=$(BUILD) $(PY) premise/workloads.py capture $* $@

# Two captures at a time unless the caller chose a -j.
traces: deps deps-premise $(PREMISE_TOOLS)
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j2) $(TRACE_FILES)
	@BUILD=$(BUILD) $(PY) premise/workloads.py summary $(TRACE_DIR)

validate-llc: traces
	BUILD=$(BUILD) nice -n 10 $(PY) premise/workloads.py validate $(TRACE_DIR)

colour-probe: $(BUILD)/premise/colour-probe
	$(BUILD)/premise/colour-probe
