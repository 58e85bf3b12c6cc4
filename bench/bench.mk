# Benchmarks are run by hand or by bench/run, never by `make test`.
bench: all
	bench/run
.PHONY: bench

# bench/blk-host.sh: virtio-blk's backends driven on the host, through the
# unit tests' little virtio driver
CPPFLAGS_bench := -Ivmm -Itests/unit $(shell pkg-config --cflags liburing 2>/dev/null)
$(BUILD)/bench/blk-host: $(BUILD)/bench/blk-host.o $(VMM_LIB)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -o $@ $^ $(VMM_LDLIBS)

# bench/vnet-host.sh: virtio-net's receive path driven on the host, the
# same way
$(BUILD)/bench/vnet-host: $(BUILD)/bench/vnet-host.o $(VMM_LIB)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -o $@ $^ $(VMM_LDLIBS)
