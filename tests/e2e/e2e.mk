# SPDX-License-Identifier: GPL-2.0-only
# tests/e2e: the end-to-end test on real Xen under QEMU (see tests/e2e/run).
#   make e2e       install its Debian packages, then run it
#   make e2e-run   run it (packages already there)
#   make e2e-live  the live scenario (below)
.PHONY: e2e e2e-run
e2e: deps-e2e
	$(MAKE) e2e-run
e2e-run:
	tests/e2e/run
# A PVH guest swapped live through the product, against a PV guest of the
# same size swapped cooperatively (E2E_SCENARIO=live; not part of make test).
#   make e2e-live      install the Debian packages, then run it
#   make e2e-live-run  run it
.PHONY: e2e-live e2e-live-run
e2e-live: deps-e2e
	$(MAKE) e2e-live-run
e2e-live-run:
	E2E_SCENARIO=live tests/e2e/run
