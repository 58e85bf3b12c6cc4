# kvmlab: one top-level Makefile, out-of-tree objects under $(BUILD).
#   make             kvmlab-net, kvmlab-vm and the net library into build/
#   make SAN=1       the same with ASan+UBSan into build/san/
#   make man         the man pages (scdoc) into build/man/
#   make install     see mk/install.mk; make uninstall undoes it
#   make test        everything CI runs (unit, sanitizer unit, cli, pkg, netns, kvm)
# Packager knobs: CFLAGS/CPPFLAGS/LDFLAGS only add to what the build needs
# (make CFLAGS="-O2 -g" keeps -std, the warnings and -D_GNU_SOURCE),
# CC=clang works, WERROR=1 turns warnings into errors (CI sets it).
BUILD ?= build
ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CC ?= cc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
	-Wshadow -Wvla -Wimplicit-fallthrough
ifeq ($(WERROR),1)
WARN += -Werror
endif
# What the code needs, kept out of the user's variables. Theirs come
# after ours, so they add to (or override) optimisation and warnings.
KL_CPPFLAGS := -D_GNU_SOURCE
KL_CFLAGS := -std=gnu11 $(WARN) -MMD -MP $(SANFLAGS)
KL_LDFLAGS := $(SANFLAGS)

all: net vmm

# per-directory extras: CPPFLAGS_net, CFLAGS_net, ... (set in each .mk)
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(KL_CPPFLAGS) $(CPPFLAGS_$(firstword $(subst /, ,$<))) $(CPPFLAGS) \
		$(KL_CFLAGS) $(CFLAGS_$(firstword $(subst /, ,$<))) $(CFLAGS) -c -o $@ $<

include mk/config.mk
include net/net.mk
include vmm/vmm.mk
include tests/tests.mk
include bench/bench.mk
include doc/doc.mk
include mk/install.mk

# Debian packages first (idempotent, quick when all are there), so that
# `make test` works on a fresh machine.
deps:
	scripts/install-deps

test: deps
	scripts/build-guest
	@$(MAKE) --no-print-directory all unit man
	@$(MAKE) --no-print-directory SAN=1 all unit
	tests/run

clean:
	rm -rf build

.PHONY: all test clean net vmm unit deps
# the compiler's dependency files, where the objects are: build/ also
# holds unpacked kernel packages and guest trees, with their own *.d
-include $(shell find $(addprefix $(BUILD)/,net vmm tests bench) -name '*.d' -type f 2>/dev/null)

# The main job: packages, build, default guest, then a VM on a NAT-ed
# kvmlab network reaching the outside (see README.md).
demo:
	@scripts/demo
.PHONY: demo
