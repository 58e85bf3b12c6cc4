# vmm/: libkvmlabvm.a (everything but main.c) and the kvmlab-vm program.
# Only main.c may include net/ (for `run --net`); devices never do.
VMM_LIB := $(BUILD)/vmm/libkvmlabvm.a
VMM_LIB_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c))
VMM_LDLIBS := -lpthread
CPPFLAGS_vmm := -Ivmm -Inet

$(VMM_LIB): $(VMM_LIB_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/kvmlab-vm: $(BUILD)/vmm/main.o $(VMM_LIB) $(NET_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(VMM_LDLIBS) $(NET_LDLIBS)

vmm: $(BUILD)/kvmlab-vm
