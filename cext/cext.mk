# SPDX-License-Identifier: GPL-2.0-only
# cext/: the Python extension memswap._memswap (built in place into
# daemon/memswap/ by setup.py, with Debian's python3 and setuptools) and the
# guest agent daemon/agent/memswap-agent (perf counters -> xenstore).
.PHONY: ext agent clean-ext

EXT_DEPS := setup.py $(wildcard cext/*.c cext/*.h core/*.c core/*.h sim/*.c sim/*.h)

ext: $(EXT_DEPS)
	$(PY) setup.py -q build_ext --inplace --build-temp $(BUILD)/cext

AGENT := $(BUILD)/memswap-agent
agent: $(AGENT)
$(AGENT): daemon/agent/memswap-agent.c cext/perf_core.c cext/perf_core.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags xenstore) \
	    daemon/agent/memswap-agent.c cext/perf_core.c -o $@ \
	    $(shell pkg-config --libs xenstore)

build: ext $(AGENT)

clean: clean-ext
clean-ext:
	rm -f daemon/memswap/_memswap*.so
