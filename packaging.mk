# SPDX-License-Identifier: GPL-2.0-only
# Debian packages built from the tree (debian/, debian-xen/) and their
# manuals (man/).
#
#   make deb          build/deb/: memswap, memswap-agent and
#                     xen-hypervisor-4.17-memswap .debs, checked by lintian
#   make deb-memswap  only memswap and memswap-agent
#   make deb-xen      only the hypervisor package (XEN_DEBUG=y: the same
#                     package with CONFIG_DEBUG=y, into build/deb/debug/)
#   make man          build/man/: memswapd.8, memswapctl.8, memswap-policy.5,
#                     memswap-agent.8
#
# The hypervisor is cached in build/xen-deb/ on everything that goes into it
# (debian-xen/build-hypervisor): a second `make deb` does not rebuild Xen.
.PHONY: deps-deb deb deb-memswap deb-xen man

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
