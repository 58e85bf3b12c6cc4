#!/usr/bin/env bash
# scripts/build-guest from a kernel package other than Debian 12's cloud
# kernel (KVMLAB_GUEST_KERNEL_DEB), here a made-up one in Debian 13's
# merged-/usr layout (modules under usr/lib/modules), with modules that
# are small ELF objects whose dependency depmod itself finds (an undefined
# symbol exported by another). Oracles: cpio's listing and the files in
# the initramfs, cmp against the package's vmlinuz. Bad packages get one
# line and exit 1.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
for c in gcc depmod dpkg-deb cpio xz busybox; do
	command -v $c >/dev/null || { t_skip "guest kernel" "$c not installed"; exit 0; }
done
w=$(mktemp -d /tmp/kvmlab-gk-test.XXXXXX) || exit 1
t_defer "rm -rf '$w'"
KV=9.9.9-kvmlab-test
# mkdeb NAME MODDIR [CONFIG]: a package with boot/vmlinuz-$KV and modules
# in MODDIR (none if empty), and boot/config-$KV with CONFIG if given
# ("none": no vmlinuz either)
mkdeb() {
	local r=$w/$1 m
	mkdir -p "$r/DEBIAN" "$r/boot"
	printf 'Package: linux-image-%s\nVersion: 1\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: t\n' "$KV" >"$r/DEBIAN/control"
	[ "${3:-}" = none ] || head -c 4096 /dev/urandom >"$r/boot/vmlinuz-$KV"
	[ -z "${3:-}" ] || [ "$3" = none ] || echo "$3" >"$r/boot/config-$KV"
	if [ -n "$2" ]; then
		m=$r/$2/$KV
		mkdir -p "$m/kernel/drivers"
		# virtio_pci needs virtio_ring's symbol; virtio_net ships xz-packed
		printf '%s\n' '__attribute__((section(".modinfo"), used)) static const char n[] = "name=virtio_ring";' \
			'__attribute__((section("__ksymtab_strings"), used)) static const char s[] = "vring_t";' \
			'int vring_t(void) { return 1; }' >"$w/ring.c"
		printf '%s\n' '__attribute__((section(".modinfo"), used)) static const char n[] = "name=virtio_pci";' \
			'extern int vring_t(void); int pci_t(void) { return vring_t(); }' >"$w/pci.c"
		printf '%s\n' '__attribute__((section(".modinfo"), used)) static const char n[] = "name=virtio_net";' \
			'int net_t(void) { return 2; }' >"$w/net.c"
		gcc -c "$w/ring.c" -o "$m/kernel/drivers/virtio_ring.ko" &&
			gcc -c "$w/pci.c" -o "$m/kernel/drivers/virtio_pci.ko" &&
			gcc -c "$w/net.c" -o "$m/kernel/drivers/virtio_net.ko" &&
			xz "$m/kernel/drivers/virtio_net.ko" || return 1
		# virtio_blk built in; the pvpanic modules absent (a warning each)
		echo kernel/drivers/block/virtio_blk.ko >"$m/modules.builtin"
		: >"$m/modules.order"
	fi
	dpkg-deb --build -Zgzip "$r" "$w/$1.deb" >/dev/null 2>&1
}
mkdeb merged usr/lib/modules || { t_fail "guest kernel: a test package"; t_finish; }

out=$w/build
if KVMLAB_BUILD=$out KVMLAB_GUEST_KERNEL_DEB=$w/merged.deb scripts/build-guest >"$w/log" 2>&1; then
	t_ok "guest kernel: build-guest takes a merged-/usr kernel package"
else
	t_fail "guest kernel: build-guest takes a merged-/usr kernel package" "$(tail -n2 "$w/log" | tr '\n' ' ')"
	t_finish
fi
[ "$(cat "$out/guest/kernel-release" 2>/dev/null)" = $KV ] &&
	t_ok "guest kernel: the guest is that package's kernel ($KV)" ||
	t_fail "guest kernel: the guest is that package's kernel" "kernel-release: $(cat "$out/guest/kernel-release" 2>&1)"
cmp -s "$out/guest/bzImage" "$w/merged/boot/vmlinuz-$KV" &&
	t_ok "guest kernel: bzImage is the package's vmlinuz" ||
	t_fail "guest kernel: bzImage is the package's vmlinuz"
order=$(tr '\n' ' ' <"$out/guest/modules.order")
[ "$order" = "virtio_ring.ko virtio_pci.ko virtio_net.ko " ] &&
	t_ok "guest kernel: modules in load order, dependency first ($order)" ||
	t_fail "guest kernel: modules in load order, dependency first" "got '$order'"
mkdir -p "$w/x"
(cd "$w/x" && cpio -idm --quiet <"$out/guest/initrd.img" 2>/dev/null)
if [ "$(head -c 4 "$w/x/lib/modules/virtio_net.ko" 2>/dev/null | od -An -c | tr -d ' ')" = 177ELF ] &&
	[ -f "$w/x/lib/modules/virtio_pci.ko" ] && [ -x "$w/x/init" ]; then
	t_ok "guest kernel: the initramfs has the modules unpacked (xz undone) and /init"
else
	t_fail "guest kernel: the initramfs has the modules unpacked (xz undone) and /init" "$(cpio -t <"$out/guest/initrd.img" 2>/dev/null | grep -c modules)"
fi
grep -q 'module virtio_blk not in' "$w/log" &&
	t_fail "guest kernel: a built-in module is not reported missing" "$(grep virtio_blk "$w/log")" ||
	t_ok "guest kernel: a built-in module is not reported missing"
grep -q 'warning: module pvpanic_pci not in this kernel' "$w/log" &&
	t_ok "guest kernel: an absent module is named in a warning" ||
	t_fail "guest kernel: an absent module is named in a warning" "$(tr '\n' ' ' <"$w/log")"

# no modules at all: a kernel built without module support (as
# Firecracker's guest kernels are), or one whose modules come in a package
# of their own (Ubuntu's linux-modules-*, told apart by CONFIG_MODULES=y
# in its config): a guest with no modules, said once
mkdeb nomods '' || { t_fail "guest kernel: a test package"; t_finish; }
mkdeb splitmods '' CONFIG_MODULES=y || { t_fail "guest kernel: a test package"; t_finish; }
for c in "nomods:built without module support" "splitmods:its package ships no modules"; do
	n=${c%%:*} want=${c#*:}
	rm -rf "$w/b1"
	if KVMLAB_BUILD=$w/b1 KVMLAB_GUEST_KERNEL_DEB=$w/$n.deb scripts/build-guest >"$w/log" 2>&1 &&
		[ -s "$w/b1/guest/initrd.img" ] && cmp -s "$w/b1/guest/bzImage" "$w/$n/boot/vmlinuz-$KV"; then
		t_ok "guest kernel: $n.deb (no lib/modules): a guest with its vmlinuz"
	else
		t_fail "guest kernel: $n.deb (no lib/modules): a guest with its vmlinuz" "$(tr '\n' ' ' <"$w/log")"
	fi
	[ "$(cat "$w/b1/guest/kernel-release" 2>/dev/null)" = $KV ] && [ ! -s "$w/b1/guest/modules.order" ] &&
		t_ok "guest kernel: $n.deb: release $KV from the vmlinuz's name, no modules" ||
		t_fail "guest kernel: $n.deb: release $KV from the vmlinuz's name, no modules" \
			"$(cat "$w/b1/guest/kernel-release" "$w/b1/guest/modules.order" 2>&1 | tr '\n' ' ')"
	t_check "guest kernel: $n.deb: the log says '$want', once" \
		test "$(grep -c "$KV: $want" "$w/log")" = 1
	t_check "guest kernel: $n.deb: no module reported missing" \
		bash -c '! grep -q "not in this kernel" "$1"' _ "$w/log"
done

# bad packages: one line naming the file, exit 1
mkdeb nokernel '' none || { t_fail "guest kernel: a test package"; t_finish; }
for c in "$w/nokernel.deb:no lib/modules and not one boot/vmlinuz-* in" "$w/missing.deb:no such file"; do
	deb=${c%%:*} want=${c#*:}
	KVMLAB_BUILD=$w/b2 KVMLAB_GUEST_KERNEL_DEB=$deb scripts/build-guest >"$w/log" 2>&1
	rc=$?
	err=$(grep 'error' "$w/log")
	if [ $rc = 1 ] && [ "$(grep -c . <<<"$err")" = 1 ] && [[ $err == *"${deb##*/}"* && $err == *"$want"* ]]; then
		t_ok "guest kernel: ${deb##*/}: one error line naming it, exit 1 ($err)"
	else
		t_fail "guest kernel: ${deb##*/}: one error line naming it, exit 1" "rc $rc: $(tr '\n' ' ' <"$w/log")"
	fi
	left=$(find "$w/b2" -mindepth 2 -path '*/kernel/*' -o -path '*/guest/*' 2>/dev/null)
	[ -z "$left" ] && t_ok "guest kernel: ${deb##*/}: no guest and no unpacked kernel left" ||
		t_fail "guest kernel: ${deb##*/}: no guest and no unpacked kernel left" "$left"
done
t_finish
