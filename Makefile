# kvmlab: one top-level Makefile, out-of-tree objects under $(BUILD).
#   make            build kvmlab-net and kvmlab-vm into build/
#   make SAN=1      the same with ASan+UBSan into build/san/
#   make test       everything CI runs (unit, sanitizer unit, netns, kvm)
BUILD ?= build
ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CC ?= cc
WARN := -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
	-Wshadow -Wvla -Wimplicit-fallthrough -Werror
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -MMD -MP $(SANFLAGS)
LDFLAGS += $(SANFLAGS)

all: net vmm

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CPPFLAGS_$(firstword $(subst /, ,$<))) -c -o $@ $<

include net/net.mk
include vmm/vmm.mk
include tests/tests.mk
include bench/bench.mk

# Debian packages first (idempotent, quick when all are there), so that
# `make test` works on a fresh machine.
deps:
	scripts/install-deps

test: deps
	scripts/build-guest
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory SAN=1 all unit
	tests/run

clean:
	rm -rf build

.PHONY: all test clean net vmm unit deps
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The main job: packages, build, default guest, then a VM on a NAT-ed
# kvmlab network reaching the outside (see README.md).
demo:
	scripts/demo
.PHONY: demo
