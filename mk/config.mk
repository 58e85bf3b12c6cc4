# Where `make install` puts things: PREFIX (/usr/local), DESTDIR (staging
# root, prepended to every path), and each directory on its own.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
# the default guest is arch-independent data read by path, like /usr/lib/systemd
GUESTDIR ?= $(PREFIX)/lib/kvmlab/guest
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
SYSCONFDIR ?= /etc

# One version for both programs: the VERSION file, and when building from
# a git checkout of this tree, git describe on top: "0.1.0" from a tarball,
# "0.1.0-g1a2b3c4d5e6f[-dirty]" from git (or "0.2.0-3-g..." past a tag v0.2.0).
KL_VERSION_BASE := $(shell cat VERSION)
KL_GIT_TOP := $(shell git rev-parse --show-toplevel 2>/dev/null)
ifeq ($(KL_GIT_TOP),$(CURDIR))
KL_GIT_TAG := $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null)
KL_GIT_HASH := $(shell git describe --always --abbrev=12 --dirty 2>/dev/null)
endif
ifneq ($(KL_GIT_TAG),)
KL_VERSION := $(KL_GIT_TAG:v%=%)
else ifneq ($(KL_GIT_HASH),)
KL_VERSION := $(KL_VERSION_BASE)-g$(KL_GIT_HASH)
else
KL_VERSION := $(KL_VERSION_BASE)
endif

# Compiled-in strings live in a stamp rewritten only when they change, so
# a new commit recompiles the two front ends and nothing else.
KL_STAMP := $(BUILD)/version.txt
KL_STAMP_TEXT := $(KL_VERSION) $(GUESTDIR) $(SYSCONFDIR)
ifeq ($(filter clean uninstall,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD) && [ "$$(cat $(KL_STAMP) 2>/dev/null)" = "$(KL_STAMP_TEXT)" ] || \
	echo "$(KL_STAMP_TEXT)" >$(KL_STAMP))
endif

# Only the two front ends see these.
$(BUILD)/net/cli.o $(BUILD)/vmm/main.o: $(KL_STAMP)
$(BUILD)/net/cli.o $(BUILD)/vmm/main.o: KL_CPPFLAGS += -DKL_VERSION='"$(KL_VERSION)"' \
	-DKL_GUEST_DIR='"$(GUESTDIR)"' -DKL_SYSCONFDIR='"$(SYSCONFDIR)"'
