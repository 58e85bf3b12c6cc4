# net/: the library (everything but cli.c) and the kvmlab-net program.
# In-tree users (kvmlab-net, kvmlab-vm, unit tests) link NET_LIB, every
# object as is. What gets installed exports only kl_* symbols:
#   $(BUILD)/lib/libkvmlabnet.so.$(NET_SOVER)  version script net/libkvmlabnet.map
#   $(BUILD)/lib/libkvmlabnet.a   one relocatable object, non-kl_ globals made local
NET_LIB := $(BUILD)/net/libkvmlabnet-internal.a
NET_LIB_SRCS := $(filter-out net/cli.c,$(wildcard net/*.c))
NET_LIB_OBJS = $(NET_LIB_SRCS:%.c=$(BUILD)/%.o)
NET_LDLIBS := -lnftnl -lmnl
CPPFLAGS_net := -Inet
CFLAGS_net := -fPIC
NET_SOMAJOR := 0
NET_SOVER := $(NET_SOMAJOR).$(word 2,$(subst ., ,$(KL_VERSION_BASE))).$(word 3,$(subst ., ,$(KL_VERSION_BASE)))
NET_SO := $(BUILD)/lib/libkvmlabnet.so.$(NET_SOVER)
NET_A := $(BUILD)/lib/libkvmlabnet.a
OBJCOPY ?= objcopy

$(NET_LIB): $(NET_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(NET_SO): $(NET_LIB_OBJS) net/libkvmlabnet.map
	@mkdir -p $(dir $@)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -shared -Wl,-soname,libkvmlabnet.so.$(NET_SOMAJOR) \
		-Wl,--version-script=net/libkvmlabnet.map -Wl,--no-undefined \
		-o $@ $(NET_LIB_OBJS) $(NET_LDLIBS)
	ln -sf $(notdir $@) $(BUILD)/lib/libkvmlabnet.so.$(NET_SOMAJOR)
	ln -sf libkvmlabnet.so.$(NET_SOMAJOR) $(BUILD)/lib/libkvmlabnet.so

$(NET_A): $(NET_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -r -nostdlib -o $(BUILD)/lib/kvmlabnet.o $^
	$(OBJCOPY) --wildcard --keep-global-symbol='kl_*' $(BUILD)/lib/kvmlabnet.o
	rm -f $@
	$(AR) rcs $@ $(BUILD)/lib/kvmlabnet.o

$(BUILD)/kvmlab-net: $(BUILD)/net/cli.o $(NET_LIB)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -o $@ $^ $(NET_LDLIBS) -ljansson

net: $(BUILD)/kvmlab-net $(NET_SO) $(NET_A)
