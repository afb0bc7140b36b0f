# SPDX-License-Identifier: GPL-2.0-only
# The policy loader's fuzz target: fuzz/fuzz.mk runs every FUZZ_TARGETS
# entry as `make fuzz-run-<name>` for FUZZ_SECONDS. A seeded generator
# (fuzz/policy_fuzz.py; FUZZ_SEED, default 1) feeds memswapd's policy
# loader schema-shaped, mutated and hostile YAML; findings go to
# $(BUILD)/fuzz/policy/. It prints
#   fuzz: target=policy execs=<n> findings=<n> seconds=<s>
# and fails when there are findings.
FUZZ_TARGETS += policy
FUZZ_SECONDS ?= 60

.PHONY: fuzz-run-policy
fuzz-run-policy:
	$(PY) fuzz/policy_fuzz.py --seconds $(FUZZ_SECONDS) --out $(BUILD)/fuzz/policy
