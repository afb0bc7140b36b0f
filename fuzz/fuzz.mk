# SPDX-License-Identifier: GPL-2.0-only
# fuzz/: fuzz targets, wired by the top-level Makefile's -include of fuzz/*.mk.
#
# A target is a fragment fuzz/<name>.mk that adds <name> to FUZZ_TARGETS and
# defines `fuzz-run-<name>`: run it for $(FUZZ_SECONDS) seconds and print
#   fuzz: target=<name> execs=<n> findings=<n> seconds=<s>
# exiting non-zero when it found something. Under fuzz-smoke FUZZ_MODE=smoke
# is in the environment: start from the seeds only, not a corpus grown by
# earlier runs, so that the smoke stays about FUZZ_SMOKE_SECONDS long.
#
#   make fuzz         every target for FUZZ_SECONDS (default 60) each
#   make fuzz-smoke   every target for FUZZ_SMOKE_SECONDS (default 5) each,
#                     then "N passed, N failed" (a target with findings fails):
#                     the stage `make test` runs, so a regression shows there
#
# This fragment: the engine's target (fuzz/engine.c), libFuzzer from Debian's
# clang with ASan and UBSan, the simulator and core/ built into it.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_CC := clang-14
FUZZ_TARGETS += engine

.PHONY: fuzz fuzz-smoke deps-fuzz fuzz-run-engine
deps-fuzz:
	@scripts/install-deps fuzz

fuzz:
	@fail=0; for t in $(FUZZ_TARGETS); do \
	    $(MAKE) --no-print-directory fuzz-run-$$t FUZZ_SECONDS=$(FUZZ_SECONDS) || fail=1; \
	done; exit $$fail

fuzz-smoke:
	@pass=0; fail=0; for t in $(FUZZ_TARGETS); do \
	    if FUZZ_MODE=smoke $(MAKE) --no-print-directory fuzz-run-$$t FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS); \
	    then pass=$$((pass + 1)); else fail=$$((fail + 1)); fi; \
	done; echo "$$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# Coverage (what libFuzzer steers by) for the engine and the target; the
# simulator around them only with the sanitizers, which keeps inputs fast.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_SIM_OBJS := $(SIM_SRCS:%.c=$(FUZZ_BUILD)/%.o)

$(FUZZ_BUILD)/sim/%.o: sim/%.c $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/engine: fuzz/engine.c $(CORE_SRCS) $(FUZZ_SIM_OBJS) $(SIM_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer fuzz/engine.c $(CORE_SRCS) \
	    $(FUZZ_SIM_OBJS) -o $@ -lm

fuzz-run-engine: deps-fuzz $(FUZZ_BUILD)/engine
	@fuzz/run-libfuzzer engine $(FUZZ_BUILD)/engine $(FUZZ_SECONDS) $(FUZZ_BUILD)
