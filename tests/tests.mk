# Unit tests: tests/unit/net_*.c link against the net library,
# tests/unit/vmm_*.c against the VMM objects. Each is its own program
# that prints TAP-style "ok - ..." / "not ok - ..." lines (tests/unit/t.h).
UNIT_NET_SRCS := $(wildcard tests/unit/net_*.c)
UNIT_VMM_SRCS := $(wildcard tests/unit/vmm_*.c)
UNIT_NET_BINS := $(UNIT_NET_SRCS:%.c=$(BUILD)/%)
UNIT_VMM_BINS := $(UNIT_VMM_SRCS:%.c=$(BUILD)/%)
CPPFLAGS_tests := -Inet -Ivmm -Itests/unit

$(UNIT_NET_BINS): $(BUILD)/%: $(BUILD)/%.o $(NET_LIB)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -o $@ $^ $(NET_LDLIBS)

$(UNIT_VMM_BINS): $(BUILD)/%: $(BUILD)/%.o $(VMM_LIB)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -o $@ $^ $(VMM_LDLIBS)

unit: $(UNIT_NET_BINS) $(UNIT_VMM_BINS)
