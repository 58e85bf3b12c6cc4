#!/usr/bin/env bash
# Persistent networks: the installed kvmlab-net@.service passes
# systemd-analyze verify (and a broken copy does not), and the exact
# ExecStart/ExecStop lines it runs, with %i and /etc/kvmlab pointed at a
# temporary config, make and remove the network in a namespace, checked
# with ip -j and nft -j. Also --config details: a value on the command
# line wins over the file's.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
d=$(mktemp -d /tmp/kvmlab-pkgsd.XXXXXX)
t_defer "rm -rf '$d'"
if ! make -s install DESTDIR="$d/root" >"$d/log" 2>&1; then
	t_fail "make install DESTDIR=..." "$(tail -3 "$d/log" | paste -sd' ')"; t_finish
fi
R=$d/root/usr/local
unit=$R/lib/systemd/system/kvmlab-net@.service

if command -v systemd-analyze >/dev/null; then
	# verify wants the ExecStart program to exist: point it into DESTDIR
	mkdir "$d/units"
	sed "s|/usr/local/bin/|$R/bin/|" "$unit" >"$d/units/kvmlab-net@.service"
	cp "$R/lib/systemd/system/kvmlab.target" "$d/units/"
	ln -s kvmlab-net@.service "$d/units/kvmlab-net@lab.service"
	(cd "$d/units" && systemd-analyze verify --man=no ./kvmlab-net@lab.service ./kvmlab.target) >"$d/verify" 2>&1
	rc=$?
	if [ $rc = 0 ] && [ ! -s "$d/verify" ]; then t_ok "systemd-analyze verify kvmlab-net@lab.service kvmlab.target: clean"
	else t_fail "systemd-analyze verify: clean" "rc=$rc $(head -3 "$d/verify" | paste -sd' ')"; fi
	# the check can fail: a unit with a typo'd key and a missing program
	mkdir "$d/bad"
	sed -e 's|^ExecStart=.*|ExecStart=/nonexistent/kvmlab-net up %i|' -e 's|^Type=|Tpye=|' \
		"$d/units/kvmlab-net@.service" >"$d/bad/kvmlab-net@.service"
	ln -s kvmlab-net@.service "$d/bad/kvmlab-net@lab.service"
	(cd "$d/bad" && systemd-analyze verify --man=no ./kvmlab-net@lab.service) >"$d/verify" 2>&1
	t_check "systemd-analyze verify complains about a broken copy" test -s "$d/verify"
	# the VM unit, with the config file it names
	vunit=$R/lib/systemd/system/kvmlab-vm@.service
	sed -e "s|/usr/local/bin/|$R/bin/|" -e "s|/etc/kvmlab/|$d/etc-vm/|" "$vunit" >"$d/units/kvmlab-vm@.service"
	mkdir -p "$d/etc-vm"
	echo 'KVMLAB_VM_ARGS="--net lab --name web"' >"$d/etc-vm/vm-web.conf"
	ln -s kvmlab-vm@.service "$d/units/kvmlab-vm@web.service"
	(cd "$d/units" && systemd-analyze verify --man=no ./kvmlab-vm@web.service) >"$d/verify" 2>&1
	rc=$?
	if [ $rc = 0 ] && [ ! -s "$d/verify" ]; then t_ok "systemd-analyze verify kvmlab-vm@web.service: clean"
	else t_fail "systemd-analyze verify kvmlab-vm@web.service: clean" "rc=$rc $(head -3 "$d/verify" | paste -sd' ')"; fi
	# the DHCP unit, next to the network unit it needs
	sed -e "s|/usr/local/bin/|$R/bin/|" "$R/lib/systemd/system/kvmlab-dhcp@.service" >"$d/units/kvmlab-dhcp@.service"
	ln -s kvmlab-dhcp@.service "$d/units/kvmlab-dhcp@lab.service"
	(cd "$d/units" && systemd-analyze verify --man=no ./kvmlab-dhcp@lab.service) >"$d/verify" 2>&1
	rc=$?
	if [ $rc = 0 ] && [ ! -s "$d/verify" ]; then t_ok "systemd-analyze verify kvmlab-dhcp@lab.service: clean"
	else t_fail "systemd-analyze verify kvmlab-dhcp@lab.service: clean" "rc=$rc $(head -3 "$d/verify" | paste -sd' ')"; fi
else
	t_skip "systemd-analyze verify" "no systemd-analyze"
fi
vunit=$R/lib/systemd/system/kvmlab-vm@.service
t_check "VM unit: stopping it presses the guest's power button (KillSignal=SIGPWR to the VMM only), bounded" \
	bash -c "grep -qx 'KillSignal=SIGPWR' '$vunit' && grep -qx 'KillMode=mixed' '$vunit' &&
		 grep -q '^TimeoutStopSec=[1-9]' '$vunit'"
dunit=$R/lib/systemd/system/kvmlab-dhcp@.service
t_check "DHCP unit: runs kvmlab-vm dhcp %i after, and with, kvmlab-net@%i" bash -c \
	"grep -qx 'ExecStart=/usr/local/bin/kvmlab-vm dhcp %i' '$dunit' &&
	 grep -qx 'Requires=kvmlab-net@%i.service' '$dunit' && grep -qx 'After=kvmlab-net@%i.service' '$dunit'"
t_check "unit: After= and Wants= network-online.target" bash -c \
	"grep -qx 'After=network-online.target' '$unit' && grep -qx 'Wants=network-online.target' '$unit'"
t_check "unit: Before=kvmlab.target, oneshot that stays active" bash -c \
	"grep -qx 'Before=kvmlab.target' '$unit' && grep -qx 'Type=oneshot' '$unit' && grep -qx 'RemainAfterExit=yes' '$unit'"

if [ "$(id -u)" != 0 ]; then
	t_skip "the unit's up/down in a namespace" "need root"; t_finish
fi
command -v jq >/dev/null || { t_fail "jq installed"; t_finish; }
t_netns_new ns pkgsd || { t_fail "netns"; t_finish; }
export KVMLAB_STATE_DIR=$d/state
mkdir -p "$d/etc/kvmlab" "$KVMLAB_STATE_DIR"
ip netns exec "$ns" ip link add up0 type veth peer name up0p
ip netns exec "$ns" ip link set up0 up
cat >"$d/etc/kvmlab/klsd.conf" <<'CONF'
# network klsd, as an admin would write it
cidr 10.98.0.1/24
--nat
uplink=up0
  mtu 1400
CONF
# ExecStart/ExecStop as systemd would run them for kvmlab-net@klsd
cmd_of() {
	sed -n "s/^$1=//p" "$unit" | sed -e 's/%i/klsd/g' -e "s|/etc/kvmlab/|$d/etc/kvmlab/|g" \
		-e "s|^/usr/local/bin/|$R/bin/|"
}
start=$(cmd_of ExecStart) stop=$(cmd_of ExecStop)
t_defer "ip netns exec $ns $stop"
# shellcheck disable=SC2086
ip netns exec "$ns" $start >"$d/out" 2>"$d/err"
rc=$?; t_check "ExecStart ($start) exits 0${rc#0}" test $rc = 0; [ $rc = 0 ] || sed "s/^/# /" "$d/err"
br=$(ip netns exec "$ns" ip -j addr show dev kl-klsd 2>/dev/null)
t_check "bridge kl-klsd up with 10.98.0.1/24 (ip -j)" test "$(jq -r '.[0] | "\(.flags | index("UP") != null) \(.addr_info[] | select(.family=="inet") | "\(.local)/\(.prefixlen)")"' <<<"$br")" = "true 10.98.0.1/24"
t_check "mtu 1400 from the file" test "$(jq -r '.[0].mtu' <<<"$br")" = 1400
t_check "NAT through up0 only (nft -j)" bash -c "ip netns exec $ns nft -j list table ip kvmlab-klsd |
	jq -e '[.nftables[].rule? // empty | .expr[]? | .match? // empty | select(.left.meta.key == \"oifname\") | .right] | index(\"up0\") != null' >/dev/null"
# shellcheck disable=SC2086
ip netns exec "$ns" $start >/dev/null 2>&1
t_check "ExecStart again (a restart) exits 0" test $? = 0
# shellcheck disable=SC2086
ip netns exec "$ns" $stop >"$d/out" 2>"$d/err"
t_check "ExecStop ($stop) exits 0" test $? = 0
t_check "after ExecStop: no bridge" bash -c "! ip netns exec $ns ip link show kl-klsd >/dev/null 2>&1"
t_check "after ExecStop: no nft table" bash -c "! ip netns exec $ns nft list table ip kvmlab-klsd >/dev/null 2>&1"

# the command line wins over the file for a value
ip netns exec "$ns" "$R/bin/kvmlab-net" up klsd --config "$d/etc/kvmlab/klsd.conf" --mtu 1300 >/dev/null 2>&1
t_check "--mtu 1300 on the command line wins over the file's 1400" \
	test "$(ip netns exec "$ns" ip -j link show kl-klsd | jq -r '.[0].mtu')" = 1300
ip netns exec "$ns" "$R/bin/kvmlab-net" down klsd >/dev/null 2>&1
t_finish
