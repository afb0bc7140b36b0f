# SPDX-License-Identifier: GPL-2.0-only
# daemon/: memswapd, memswapctl, policies, the simulator demo and pytest.
#
#   make test-py   pytest of the extension, the policy engine and the daemon
#   make demo      memswapd on a simulated host of traced real programs: a victim
#                  thrashed by a streamer gets moved (traces: make demo-traces)
.PHONY: test-py demo

# pytest's exit code 5 ("no tests collected") is a failure here, not a pass.
# A private --basetemp: concurrent pytest runs sharing /tmp/pytest-of-$USER
# prune each other's numbered temp directories (and our daemons' sockets).
test-py:
	$(PY) -m pytest -q -p no:cacheprovider --basetemp=$(BUILD)/pytest-py tests/py; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "test-py: no tests collected" >&2; exit 1; fi; exit $$rc

demo: deps build demo-traces
	PY=$(PY) BUILD=$(BUILD) nice -n 10 scripts/demo
