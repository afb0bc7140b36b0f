# SPDX-License-Identifier: GPL-2.0-only
# premise/: the premise checked on real programs and a real CPU.
#
#   make traces         memory-reference traces of real programs (valgrind lackey),
#                       cached as build/traces/<program>.mtr; several minutes on 2 cores
#   make demo-traces    only the traces make demo replays (a couple of minutes)
#   make validate-llc   the simulator's cache model against cachegrind, program by program
#   make colour-probe   page colouring measured on this machine's CPU (root: pagemap)
#   make study          memswapd with and without, on mixes of traced programs and two
#                       cache sizes: a table and build/study/study.png
#
# The programs and their inputs are defined once, in premise/workloads.py.
PREMISE_PROGRAMS := sqlite xz sort python gcc diff
# What daemon/scenarios/demo.yaml replays: a victim (python), a streamer
# (diff) and two bystanders (sqlite, xz).
DEMO_TRACES      := diff python sqlite xz
TRACE_DIR        := $(BUILD)/traces
TRACE_FILES      := $(PREMISE_PROGRAMS:%=$(TRACE_DIR)/%.mtr)
PREMISE_TOOLS    := $(BUILD)/premise/lackey2trace $(BUILD)/premise/tracetool

.PHONY: deps-premise traces demo-traces validate-llc colour-probe study premise-force

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

# A trace is captured again when its own program's definition (command line
# and inputs: <program>.def, rewritten only when it changes) or the format
# changes, not when a tool is rebuilt or another program is redefined.
.PRECIOUS: $(TRACE_DIR)/%.def
$(TRACE_DIR)/%.def: premise-force
	@mkdir -p $(dir $@)
	@BUILD=$(BUILD) $(PY) premise/workloads.py define $* $@
$(TRACE_DIR)/%.mtr: $(TRACE_DIR)/%.def sim/trace.h | $(PREMISE_TOOLS)
	BUILD=$(BUILD) $(PY) premise/workloads.py capture $* $@

# Two captures at a time unless the caller chose a -j.
traces: deps deps-premise $(PREMISE_TOOLS)
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j2) $(TRACE_FILES)
	@BUILD=$(BUILD) $(PY) premise/workloads.py summary $(TRACE_DIR)

demo-traces: deps deps-premise $(PREMISE_TOOLS)
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j2) \
	    $(DEMO_TRACES:%=$(TRACE_DIR)/%.mtr)

validate-llc: traces
	BUILD=$(BUILD) nice -n 10 $(PY) premise/workloads.py validate $(TRACE_DIR)

colour-probe: $(BUILD)/premise/colour-probe
	$(BUILD)/premise/colour-probe

study: traces build
	BUILD=$(BUILD) PY=$(PY) nice -n 10 $(PY) premise/study.py
