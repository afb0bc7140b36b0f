# SPDX-License-Identifier: GPL-2.0-only
# make bench: the swap engine on simulated domains of 256 MiB, 1 GiB, 4 GiB.
$(BUILD)/bench/bench: bench/bench.c $(BUILD)/libmemswapsim.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(BUILD)/libmemswapsim.a -o $@ -lm

bench: deps $(BUILD)/bench/bench
	$(BUILD)/bench/bench

# make bench-llc: the cache model's speed (references per second by pattern).
$(BUILD)/bench/llc_bench: bench/llc_bench.c $(BUILD)/libmemswapsim.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(BUILD)/libmemswapsim.a -o $@ -lm

.PHONY: bench-llc
bench-llc: deps $(BUILD)/bench/llc_bench
	$(BUILD)/bench/llc_bench
