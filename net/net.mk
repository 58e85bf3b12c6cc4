# net/: libkvmlabnet.a (everything but cli.c) and the kvmlab-net program.
NET_LIB := $(BUILD)/net/libkvmlabnet.a
NET_LIB_SRCS := $(filter-out net/cli.c,$(wildcard net/*.c))
NET_LDLIBS := -lnftnl -lmnl
CPPFLAGS_net := -Inet

$(NET_LIB): $(NET_LIB_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/kvmlab-net: $(BUILD)/net/cli.o $(NET_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(NET_LDLIBS) -ljansson

net: $(BUILD)/kvmlab-net
