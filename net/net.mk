# net/: libkvmlabnet.a (everything but cli.c) and the kvmlab-net program.
NET_LIB := $(BUILD)/net/libkvmlabnet.a
NET_CLI_SRCS := net/cli.c net/cli_json_lease.c
NET_LIB_SRCS := $(filter-out $(NET_CLI_SRCS),$(wildcard net/*.c))
NET_LDLIBS := -lnftnl -lmnl
CPPFLAGS_net := -Inet

$(NET_LIB): $(NET_LIB_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/kvmlab-net: $(NET_CLI_SRCS:%.c=$(BUILD)/%.o) $(NET_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(NET_LDLIBS) -ljansson

net: $(BUILD)/kvmlab-net
