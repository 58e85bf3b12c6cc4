# vmm/: libkvmlabvm.a and the kvmlab-vm program. The source list is
# explicit: add a file here when it compiles. Only the command-line
# front may include net/: main.c and fwd6.c (for `run --net`) and cmd_dhcp.c (for
# `dhcp NET`), linked into the program, not the library; devices never do.
VMM_LIB := $(BUILD)/vmm/libkvmlabvm.a
VMM_LIB_SRCS := vmm/guestmem.c
# liburing (Debian: liburing-dev) is required: virtio-blk's io_uring backend
URING_PC := $(shell pkg-config --exists liburing && echo yes)
ifneq ($(filter-out clean uninstall deps,$(or $(MAKECMDGOALS),all)),)
ifneq ($(URING_PC),yes)
$(error liburing not found by pkg-config: apt-get install liburing-dev (or scripts/install-deps))
endif
endif
VMM_LDLIBS := -lpthread $(shell pkg-config --libs liburing jansson 2>/dev/null)
CPPFLAGS_vmm := -Ivmm -Inet $(shell pkg-config --cflags liburing 2>/dev/null)

# second expansion: lines appended below the rule still reach the archive
.SECONDEXPANSION:
$(VMM_LIB): $$(patsubst %.c,$(BUILD)/%.o,$$(VMM_LIB_SRCS))
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/kvmlab-vm: $(BUILD)/vmm/main.o $(BUILD)/vmm/cmd_dhcp.o $(BUILD)/vmm/fwd6.o $(VMM_LIB) $(NET_LIB)
	$(CC) $(KL_LDFLAGS) $(LDFLAGS) -o $@ $^ $(VMM_LDLIBS) $(NET_LDLIBS)

vmm: $(BUILD)/kvmlab-vm
VMM_LIB_SRCS += vmm/devices.c
VMM_LIB_SRCS += vmm/virtqueue.c
VMM_LIB_SRCS += vmm/pci.c
VMM_LIB_SRCS += vmm/boot.c
VMM_LIB_SRCS += vmm/boot_elf.c
VMM_LIB_SRCS += vmm/virtio_pci.c
VMM_LIB_SRCS += vmm/event.c
VMM_LIB_SRCS += vmm/virtio_net.c
VMM_LIB_SRCS += vmm/virtio_blk.c
VMM_LIB_SRCS += vmm/blk_req.c
VMM_LIB_SRCS += vmm/blk_uring.c
VMM_LIB_SRCS += vmm/bus.c
VMM_LIB_SRCS += vmm/kvm.c
VMM_LIB_SRCS += vmm/cpu.c
VMM_LIB_SRCS += vmm/serial.c
VMM_LIB_SRCS += vmm/power.c
VMM_LIB_SRCS += vmm/i8042.c
VMM_LIB_SRCS += vmm/check.c
VMM_LIB_SRCS += vmm/vm.c
VMM_LIB_SRCS += vmm/exit.c
VMM_LIB_SRCS += vmm/halt.c
VMM_LIB_SRCS += vmm/pvpanic_pci.c
VMM_LIB_SRCS += vmm/console.c
VMM_LIB_SRCS += vmm/runloop.c
VMM_LIB_SRCS += vmm/mptable.c
VMM_LIB_SRCS += vmm/aml.c
VMM_LIB_SRCS += vmm/acpi.c
VMM_LIB_SRCS += vmm/vhost.c
VMM_LIB_SRCS += vmm/vhost_net.c
VMM_LIB_SRCS += vmm/virtio_net_vhost.c
VMM_LIB_SRCS += vmm/dhcp_tap.c
VMM_LIB_SRCS += vmm/dhcp.c
VMM_LIB_SRCS += vmm/ra.c
VMM_LIB_SRCS += vmm/virtio_rng.c
VMM_LIB_SRCS += vmm/virtio_vsock.c
VMM_LIB_SRCS += vmm/virtio_mmio.c
VMM_LIB_SRCS += vmm/cli.c
VMM_LIB_SRCS += vmm/ctl.c
VMM_LIB_SRCS += vmm/ctl_client.c
VMM_LIB_SRCS += vmm/cmd_ctl.c
