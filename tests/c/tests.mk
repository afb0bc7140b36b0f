# SPDX-License-Identifier: GPL-2.0-only
# tests/c: one program per tests/c/test_*.c, linked with the simulator and
# the engine. `make test-c` runs them all and fails if any fails.
# tests/c/naive_swap.c is a fixture (the seed post's S1-S9), linked into
# every test program so that tests can compare against it.
TESTC_SRCS  := $(sort $(wildcard tests/c/test_*.c))
TESTC_BINS  := $(TESTC_SRCS:tests/c/%.c=$(BUILD)/tests/%)
TESTC_FIXT  := $(filter-out $(TESTC_SRCS),$(wildcard tests/c/*.c))
TESTC_FOBJS := $(TESTC_FIXT:%.c=$(BUILD)/%.o)

$(BUILD)/tests/c/%.o: tests/c/%.c $(wildcard tests/c/*.h) $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/test_%: tests/c/test_%.c $(wildcard tests/c/*.h) $(TESTC_FOBJS) $(BUILD)/libmemswapsim.a $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(TESTC_FOBJS) $(BUILD)/libmemswapsim.a -o $@ -lm

# Other fragments add their C tests to TESTC_BINS (cext/cext.mk); they are
# included after this one, so the list is expanded when the rule runs.
.SECONDEXPANSION:
test-c: $$(TESTC_BINS)
	@fail=0; for t in $(TESTC_BINS); do \
	    echo "== $$t"; $$t || fail=1; \
	done; exit $$fail

# The same tests built with AddressSanitizer and UBSan in a separate tree:
# memory errors and leaks in core/ and sim/ fail the run.
SAN_BUILD := $(BUILD)/sanitize
test-c-sanitize:
	$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    $(TESTC_BINS:$(BUILD)/%=$(SAN_BUILD)/%)
	@fail=0; for t in $(TESTC_BINS:$(BUILD)/%=$(SAN_BUILD)/%); do \
	    echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t || fail=1; \
	done; exit $$fail
.SECONDARY:
