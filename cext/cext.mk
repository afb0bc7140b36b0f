# SPDX-License-Identifier: GPL-2.0-only
# cext/ and the C programs around it. One build graph: make compiles every
# object once; setup.py links the archives built here into the extension.
#
#   build/libmemswaphost.a   the Python-free C under cext/: the swap sequence
#                            (coop.c), its simulator (sim/) and Xen (xen/)
#                            steps, the P2M reader, perf_event groups
#   make ext                 memswap._memswap in place (daemon/memswap/),
#                            linking libmemswaphost.a and libmemswapsim.a
#   make agent               the guest agent: build/memswap-agent (libxenstore,
#                            for Debian guests) and build/memswap-agent-static
#                            (for minimal guests without Xen libraries)
#   make e2e-programs        the end-to-end test's static programs (observer,
#                            guest verifier) in build/e2e-programs/
#   tests/cext/test_*.c      C tests of the sequence, its refusals and the Xen
#                            request: run by make test-c and (ASan/UBSan)
#                            make test-c-sanitize with those of tests/c
.PHONY: ext agent e2e-programs clean-ext

XEN_PKGS   := xencontrol xenguest xenstore xencall xenforeignmemory
XEN_CFLAGS := $(shell pkg-config --cflags $(XEN_PKGS) 2>/dev/null)
XEN_LIBS   := $(shell pkg-config --libs $(XEN_PKGS) 2>/dev/null)

HOST_SRCS := cext/coop.c cext/perf_core.c cext/sim/sim_coop.c \
             cext/xen/xen_coop.c cext/xen/xen_domain.c cext/xen/xen_p2m.c
HOST_OBJS := $(HOST_SRCS:%.c=$(BUILD)/%.o)
HOST_HDRS := cext/coop.h cext/perf_core.h cext/sim/sim_coop.h cext/xen/xenhost.h \
             core/xen_domctl_memswap.h $(SIM_HDRS)

$(BUILD)/cext/%.o: cext/%.c $(HOST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(XEN_CFLAGS) -c $< -o $@

$(BUILD)/libmemswaphost.a: $(HOST_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# ---- the extension ---------------------------------------------------------------
EXT_SRCS := $(filter-out $(HOST_SRCS),$(wildcard cext/*.c))

ext: setup.py $(EXT_SRCS) cext/memswap_ext.h $(BUILD)/libmemswaphost.a $(BUILD)/libmemswapsim.a
	MEMSWAP_BUILD=$(BUILD) $(PY) setup.py -q build_ext --inplace --build-temp $(BUILD)/pyext --build-lib $(BUILD)/pyext/lib

# ---- the guest agent ----------------------------------------------------------------
AGENT := $(BUILD)/memswap-agent
agent: $(AGENT) $(AGENT)-static
$(AGENT): agent/memswap-agent.c $(BUILD)/cext/perf_core.o cext/perf_core.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags xenstore) \
	    $< $(BUILD)/cext/perf_core.o -o $@ $(LDFLAGS) $(shell pkg-config --libs xenstore)
# A busybox guest has no shared libraries to offer: libxenstore.a talks to
# xenstore over /dev/xen/xenbus like the shared one.
$(AGENT)-static: agent/memswap-agent.c $(BUILD)/cext/perf_core.o cext/perf_core.h
	@mkdir -p $(dir $@)
	$(CC) -static $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags xenstore) \
	    $< $(BUILD)/cext/perf_core.o -o $@ $(LDFLAGS) $(shell pkg-config --static --libs xenstore) -pthread

# ---- the end-to-end test's programs (static: its dom0 and guest images) ----------------
E2E_BIN := $(BUILD)/e2e-programs
e2e-programs: $(E2E_BIN)/memswap-e2e-tool $(E2E_BIN)/guest-verifier
$(E2E_BIN)/memswap-e2e-tool: tests/e2e/tool.c $(BUILD)/libmemswaphost.a $(HOST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -static $(CPPFLAGS) $(CFLAGS) -Werror $(XEN_CFLAGS) $< $(BUILD)/libmemswaphost.a \
	    -o $@ $(shell pkg-config --static --libs xencontrol xenforeignmemory xenstore) -pthread
$(E2E_BIN)/guest-verifier: tests/e2e/guest-verifier.c
	@mkdir -p $(dir $@)
	$(CC) -static $(CPPFLAGS) $(CFLAGS) -Werror $< -o $@

# ---- C unit tests ---------------------------------------------------------------------
TESTCEXT_SRCS := $(sort $(wildcard tests/cext/test_*.c))
TESTCEXT_BINS := $(TESTCEXT_SRCS:tests/cext/%.c=$(BUILD)/tests/cext/%)

$(BUILD)/tests/cext/test_%: tests/cext/test_%.c tests/c/harness.h $(BUILD)/libmemswaphost.a \
                            $(BUILD)/libmemswapsim.a $(HOST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(XEN_CFLAGS) $< $(BUILD)/libmemswaphost.a \
	    $(BUILD)/libmemswapsim.a -o $@ $(XEN_LIBS) -lm

# Run (and, under ASan/UBSan, built and run) with the C tests of tests/c.
TESTC_BINS += $(TESTCEXT_BINS)

# The fake PMU tests/py/test_agent.py preloads into the agent.
FAKE_PERF := $(BUILD)/tests/cext/fake_perf.so
$(FAKE_PERF): tests/cext/fake_perf.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -shared -fPIC $< -o $@ -ldl

build: ext agent $(FAKE_PERF)

clean: clean-ext
clean-ext:
	rm -f daemon/memswap/_memswap*.so
