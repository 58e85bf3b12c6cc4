#!/usr/bin/env bash
# make install into a DESTDIR: every file where PREFIX and the *DIR
# variables say, the installed programs run from there (--version; the
# installed default guest is what kvmlab-vm finds), the completion and
# man pages are the tree's, and make uninstall removes every file.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
d=$(mktemp -d /tmp/kvmlab-pkginst.XXXXXX)
t_defer "rm -rf '$d'"
if ! make -s install DESTDIR="$d/root" >"$d/log" 2>&1; then
	t_fail "make install DESTDIR=..." "$(tail -3 "$d/log" | paste -sd' ')"; t_finish
fi
t_ok "make install DESTDIR=..."
R=$d/root/usr/local
miss=
for f in bin/kvmlab-net bin/kvmlab-vm include/kvmlab/net.h \
	lib/libkvmlabnet.so lib/libkvmlabnet.so.0 lib/libkvmlabnet.a lib/pkgconfig/kvmlabnet.pc \
	share/man/man8/kvmlab-net.8 share/man/man1/kvmlab-vm.1 \
	share/bash-completion/completions/kvmlab-net share/bash-completion/completions/kvmlab-vm \
	lib/systemd/system/kvmlab-net@.service lib/systemd/system/kvmlab-vm@.service \
	lib/systemd/system/kvmlab-dhcp@.service \
	lib/systemd/system/kvmlab.target; do
	[ -e "$R/$f" ] || miss="$miss $f"
done
t_check "everything under PREFIX=/usr/local${miss:+ (missing:$miss)}" test -z "$miss"
t_check "programs are executable" test -x "$R/bin/kvmlab-net" -a -x "$R/bin/kvmlab-vm"
t_check "libkvmlabnet.so.0 -> the real file" test -f "$(readlink -f "$R/lib/libkvmlabnet.so.0")"
t_check "nothing outside DESTDIR's usr/local" test "$(ls "$d/root")" = usr -a "$(ls "$d/root/usr")" = local
t_check "net.h is the tree's" cmp -s net/net.h "$R/include/kvmlab/net.h"
t_check "unit runs the installed kvmlab-net" grep -qx 'ExecStart=/usr/local/bin/kvmlab-net up %i --config /etc/kvmlab/%i.conf' \
	"$R/lib/systemd/system/kvmlab-net@.service"
t_check "VM unit runs the installed kvmlab-vm with its /etc/kvmlab file" bash -c \
	"grep -qx 'ExecStart=/usr/local/bin/kvmlab-vm run \$KVMLAB_VM_ARGS' '$R/lib/systemd/system/kvmlab-vm@.service' &&
	 grep -qx 'EnvironmentFile=/etc/kvmlab/vm-%i.conf' '$R/lib/systemd/system/kvmlab-vm@.service'"

want=$(cat VERSION)
for p in kvmlab-net kvmlab-vm; do
	v=$("$R/bin/$p" --version 2>&1); rc=$?
	if [ $rc = 0 ] && [[ $v == "$p $want"* ]] && [ "${v#"$p "}" = "$("$KVMLAB_BUILD/$p" --version | cut -d' ' -f2)" ]; then
		t_ok "installed $p --version: $v"
	else
		t_fail "installed $p --version" "rc=$rc '$v'"
	fi
done

if [ -f build/guest/bzImage ]; then
	t_check "the default guest is installed (bzImage)" cmp -s build/guest/bzImage "$R/lib/kvmlab/guest/bzImage"
	t_check "the default guest is installed (initrd.img)" cmp -s build/guest/initrd.img "$R/lib/kvmlab/guest/initrd.img"
	out=$("$R/bin/kvmlab-vm" check 2>&1)
	t_check "installed kvmlab-vm finds the installed guest" \
		grep -qx "guest: default guest: $(readlink -f "$R/lib/kvmlab/guest")" <<<"$out"
	# alone, with no guest next to it or at the install path: a clear line
	mkdir "$d/alone" && cp "$R/bin/kvmlab-vm" "$d/alone/"
	if [ ! -e /usr/local/lib/kvmlab/guest/bzImage ]; then
		"$d/alone/kvmlab-vm" run >"$d/out" 2>"$d/err" </dev/null; rc=$?
		t_check "no default guest anywhere: exit 1 naming where it looked" \
			test $rc = 1 -a "$(grep -c . "$d/err")" = 1 -a \
			"$(grep -c "no default guest (bzImage) in $d/alone/guest, .*/usr/local/lib/kvmlab/guest: build it with scripts/build-guest" "$d/err")" = 1
	fi
else
	t_skip "installed default guest" "no build/guest (scripts/build-guest)"
fi

# installed man pages and completion are the built ones
t_check "installed man page renders" bash -c "LC_ALL=C man -l '$R/share/man/man8/kvmlab-net.8' | grep -q '^NAME'"
t_check "installed completion loads in bash" bash -c \
	". '$R/share/bash-completion/completions/kvmlab-net' && complete -p kvmlab-net kvmlab-vm >/dev/null"

if ! make -s uninstall DESTDIR="$d/root" >"$d/log" 2>&1; then
	t_fail "make uninstall" "$(tail -3 "$d/log" | paste -sd' ')"
else
	left=$(cd "$d/root" && find . ! -type d | head -5 | paste -sd' ')
	t_check "make uninstall removes every file${left:+ (left: $left)}" test -z "$left"
fi
t_finish
