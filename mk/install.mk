# make install / make uninstall. Every path is $(DESTDIR)$(XXXDIR), so a
# staging install (make install DESTDIR=/tmp/stage) runs as is from there:
# kvmlab-vm also looks for the guest at <its dir>/../lib/kvmlab/guest.
# The default guest is installed when scripts/build-guest has made it.
INSTALL ?= install
GUEST_SRC ?= build/guest
NET_PC := $(BUILD)/lib/kvmlabnet.pc
UNIT_SUBST := sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

$(NET_PC): $(KL_STAMP) mk/install.mk
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
		'Name: kvmlabnet' \
		'Description: kvmlab host networking: bridges, taps, forwarding and NAT for lab VMs' \
		'Version: $(KL_VERSION_BASE)' 'Requires.private: libmnl libnftnl' \
		'Libs: -L$${libdir} -lkvmlabnet' 'Cflags: -I$${includedir}' >$@

install: all man $(NET_PC)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(INCLUDEDIR)/kvmlab $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(BUILD)/kvmlab-net $(BUILD)/kvmlab-vm $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 755 $(NET_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(NET_SO)) $(DESTDIR)$(LIBDIR)/libkvmlabnet.so.$(NET_SOMAJOR)
	ln -sf libkvmlabnet.so.$(NET_SOMAJOR) $(DESTDIR)$(LIBDIR)/libkvmlabnet.so
	$(INSTALL) -m 644 $(NET_A) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 644 $(NET_PC) $(DESTDIR)$(LIBDIR)/pkgconfig/
	$(INSTALL) -m 644 net/net.h $(DESTDIR)$(INCLUDEDIR)/kvmlab/
	$(INSTALL) -m 644 $(BUILD)/man/kvmlab-vm.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(BUILD)/man/kvmlab-net.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 completion/kvmlab.bash $(DESTDIR)$(BASHCOMPDIR)/kvmlab-net
	$(INSTALL) -m 644 completion/kvmlab.bash $(DESTDIR)$(BASHCOMPDIR)/kvmlab-vm
	$(UNIT_SUBST) systemd/kvmlab-net@.service.in >$(DESTDIR)$(UNITDIR)/kvmlab-net@.service
	$(UNIT_SUBST) systemd/kvmlab-vm@.service.in >$(DESTDIR)$(UNITDIR)/kvmlab-vm@.service
	$(UNIT_SUBST) systemd/kvmlab-dhcp@.service.in >$(DESTDIR)$(UNITDIR)/kvmlab-dhcp@.service
	$(INSTALL) -m 644 systemd/kvmlab.target $(DESTDIR)$(UNITDIR)/
	@if [ -f $(GUEST_SRC)/bzImage ] && [ -f $(GUEST_SRC)/initrd.img ]; then \
		echo "$(INSTALL) -m 644 $(GUEST_SRC)/bzImage $(GUEST_SRC)/initrd.img $(DESTDIR)$(GUESTDIR)/"; \
		$(INSTALL) -d $(DESTDIR)$(GUESTDIR) && \
		$(INSTALL) -m 644 $(GUEST_SRC)/bzImage $(GUEST_SRC)/initrd.img $(DESTDIR)$(GUESTDIR)/; \
	else \
		echo "install: no default guest in $(GUEST_SRC) (scripts/build-guest makes it); not installed"; \
	fi
	@[ -n "$(DESTDIR)" ] || ! command -v ldconfig >/dev/null || ldconfig

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kvmlab-net $(DESTDIR)$(BINDIR)/kvmlab-vm \
		$(DESTDIR)$(LIBDIR)/libkvmlabnet.so* $(DESTDIR)$(LIBDIR)/libkvmlabnet.a \
		$(DESTDIR)$(LIBDIR)/pkgconfig/kvmlabnet.pc $(DESTDIR)$(INCLUDEDIR)/kvmlab/net.h \
		$(DESTDIR)$(MANDIR)/man1/kvmlab-vm.1 $(DESTDIR)$(MANDIR)/man8/kvmlab-net.8 \
		$(DESTDIR)$(BASHCOMPDIR)/kvmlab-net $(DESTDIR)$(BASHCOMPDIR)/kvmlab-vm \
		$(DESTDIR)$(UNITDIR)/kvmlab-net@.service $(DESTDIR)$(UNITDIR)/kvmlab-vm@.service \
		$(DESTDIR)$(UNITDIR)/kvmlab-dhcp@.service \
		$(DESTDIR)$(UNITDIR)/kvmlab.target \
		$(DESTDIR)$(GUESTDIR)/bzImage $(DESTDIR)$(GUESTDIR)/initrd.img
	-rmdir $(DESTDIR)$(INCLUDEDIR)/kvmlab $(DESTDIR)$(GUESTDIR) $(dir $(DESTDIR)$(GUESTDIR)) 2>/dev/null

.PHONY: install uninstall
