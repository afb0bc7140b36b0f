# SPDX-License-Identifier: GPL-2.0-only
# memswap: top-level build, one graph for every C object and program.
# Components keep their rules in their own fragments (core/core.mk,
# sim/sim.mk, tests/c/tests.mk, bench/bench.mk, tests/e2e/e2e.mk,
# cext/cext.mk: the extension, the guest agent, the e2e programs,
# daemon/daemon.mk); this file wires the user-facing targets.
#
#   make build   libraries, the extension (in place), the guest agent
#   make demo    the simulator demo (daemon + policy + swap of a victim)
#   make test    every test: C tests, pytest, end-to-end on Xen under QEMU
#   make bench   swap-engine benchmark on the simulator
#   make e2e     only the end-to-end test on real Xen

# Debian's interpreter: the Python packages we use are Debian's.
PY       := /usr/bin/python3
CC       ?= gcc
BUILD    := build
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -fPIC
CPPFLAGS += -I.

.PHONY: all deps deps-e2e build demo test test-c test-c-sanitize test-py e2e bench clean
all: build

deps:
	@scripts/install-deps base
deps-e2e:
	@scripts/install-deps e2e

include core/core.mk
include sim/sim.mk
include tests/c/tests.mk
include bench/bench.mk
include tests/e2e/e2e.mk
-include cext/cext.mk
-include daemon/daemon.mk
include packaging.mk
include premise/premise.mk
-include $(wildcard fuzz/*.mk)

build: $(BUILD)/libmemswapsim.a

# Every stage runs even if one fails; the last line totals them all.
test: deps deps-e2e build
	@MAKE="$(MAKE)" scripts/test-all

clean:
	rm -rf $(BUILD)
