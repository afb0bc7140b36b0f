# SPDX-License-Identifier: GPL-2.0-only
# Debian packages built from the tree (debian/) and their
# manuals (man/).
#
#   make deb          build/deb/: memswap and memswap-agent .debs, checked by
#                     lintian
#   make deb-memswap  the same
#   make man          build/man/: memswapd.8, memswapctl.8, memswap-policy.5,
#                     memswap-agent.8
.PHONY: deps-deb deb deb-memswap man

MEMSWAP_VERSION := $(shell cat VERSION)
DEB_OUT   := $(BUILD)/deb

deps-deb:
	@scripts/install-deps deb

deb: deb-memswap

deb-memswap: deps-deb
	nice -n 10 debian/build-debs $(DEB_OUT)

MAN_PAGES := $(patsubst man/%.rst,$(BUILD)/man/%,$(wildcard man/*.rst))
man: $(MAN_PAGES)
$(BUILD)/man/%: man/%.rst VERSION
	@mkdir -p $(dir $@)
	sed 's/@VERSION@/$(MEMSWAP_VERSION)/' $< | rst2man --strict --no-generator --no-datestamp - $@.tmp
	mv $@.tmp $@
