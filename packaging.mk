# SPDX-License-Identifier: GPL-2.0-only
# Debian packages built from the tree (debian/, debian-xen/), their manuals
# (man/) and the test that installs them in a throwaway bookworm chroot.
#
#   make deb          build/deb/: memswap, memswap-agent and
#                     xen-hypervisor-4.17-memswap .debs, checked by lintian
#   make deb-memswap  only memswap and memswap-agent
#   make deb-xen      only the hypervisor package (XEN_DEBUG=y: the same
#                     package with CONFIG_DEBUG=y, into build/deb/debug/)
#   make man          build/man/: memswapd.8, memswapctl.8, memswap-policy.5,
#                     memswap-agent.8
#   make test-deb     build the .debs (the hypervisor's debug flavour), install
#                     them with apt in a bookworm chroot and check them
#                     (tests/deb/run)
#
# The hypervisor is cached in build/xen-deb/ on everything that goes into it
# (debian-xen/build-hypervisor): a second `make deb` does not rebuild Xen.
.PHONY: deps-deb deb deb-memswap deb-xen man test-deb

MEMSWAP_VERSION := $(shell cat VERSION)
DEB_OUT   := $(BUILD)/deb
XEN_DEBUG ?= n

deps-deb:
	@scripts/install-deps deb

deb: deb-memswap deb-xen

deb-memswap: deps-deb
	nice -n 10 debian/build-debs $(DEB_OUT)

XEN_DEB_DIR = $(if $(filter y yes 1,$(XEN_DEBUG)),$(DEB_OUT)/debug,$(DEB_OUT))
deb-xen: deps-deb
	XEN_DEBUG=$(XEN_DEBUG) nice -n 10 debian-xen/build-deb $(XEN_DEB_DIR)

MAN_PAGES := $(patsubst man/%.rst,$(BUILD)/man/%,$(wildcard man/*.rst))
man: $(MAN_PAGES)
$(BUILD)/man/%: man/%.rst VERSION
	@mkdir -p $(dir $@)
	sed 's/@VERSION@/$(MEMSWAP_VERSION)/' $< | rst2man --strict --no-generator --no-datestamp - $@.tmp
	mv $@.tmp $@

# The debug hypervisor by default: the end-to-end test boots that flavour,
# so in `make test` one Xen build serves both.
test-deb: XEN_DEBUG = y
test-deb: deb-memswap deb-xen
	DEB_TEST_XEN_DEB=$(XEN_DEB_DIR)/xen-hypervisor-4.17-memswap_$(MEMSWAP_VERSION)_amd64.deb \
	    nice -n 10 tests/deb/run $(DEB_OUT)
