# SPDX-License-Identifier: GPL-2.0-only
# tests/e2e: the end-to-end test on real Xen under QEMU (see tests/e2e/run).
#   make e2e       install its Debian packages, then run it
#   make e2e-run   run it (packages already there)
.PHONY: e2e e2e-run
e2e: deps-e2e
	$(MAKE) e2e-run
e2e-run:
	tests/e2e/run
