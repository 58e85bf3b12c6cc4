#!/usr/bin/env bash
# CLI consistency of kvmlab-net and kvmlab-vm (no root, no KVM): one
# version, --help and `help COMMAND` at every level, one error style with
# "did you mean", and the same exit code for the same class of error
# (doc/exit-status.txt: 1 a bad value, 2 usage).
. "$(dirname "$0")/../lib.sh"
NET=$KVMLAB_NET VM=$KVMLAB_VM
for b in "$NET" "$VM"; do
	[ -x "$b" ] || { t_fail "$b built" "missing (make all)"; t_finish; }
done
d=$(mktemp -d /tmp/kvmlab-pkgcli.XXXXXX)
t_defer "rm -rf '$d'"

# run NAME ARGS...: sets RC, OUT, ERR
run() { "$@" >"$d/out" 2>"$d/err" </dev/null; RC=$?; OUT=$(cat "$d/out"); ERR=$(cat "$d/err"); }
desc() { printf 'rc=%s stderr=%q stdout=%q' "$RC" "$ERR" "${OUT:0:200}"; }

# --- --version: both programs, one version, from VERSION (+ git)
want=$(cat "$T_ROOT/VERSION")
run "$NET" --version; nv=$OUT
if [ "$RC" = 0 ] && [[ $nv =~ ^kvmlab-net\ ${want//./\\.}(-.+)?$ ]]; then t_ok "kvmlab-net --version: $nv"
else t_fail "kvmlab-net --version starts with VERSION ($want)" "$(desc)"; fi
run "$VM" --version; vv=$OUT
if [ "$RC" = 0 ] && [ "${vv#kvmlab-vm }" = "${nv#kvmlab-net }" ]; then t_ok "kvmlab-vm --version is the same version"
else t_fail "kvmlab-vm --version is the same version" "net '$nv' vm '$vv'"; fi
if git -C "$T_ROOT" rev-parse --show-toplevel 2>/dev/null | grep -qx "$T_ROOT"; then
	h=$(git -C "$T_ROOT" rev-parse --short=12 HEAD)
	t_check "from git: the version names the commit ($h)" grep -q -- "-g$h" <<<"$nv"
fi

# --- help at every level; `help CMD` is `CMD --help`
helps() {
	local prog=$1; shift
	local c
	for c in "$@"; do
		run "$prog" $c --help; local a=$OUT arc=$RC
		if [ "$arc" = 0 ] && [ -n "$a" ] && [ -z "$ERR" ]; then t_ok "${prog##*/} $c --help: exit 0, text on stdout"
		else t_fail "${prog##*/} $c --help: exit 0, text on stdout" "$(desc)"; fi
		run "$prog" help $c
		if [ "$RC" = 0 ] && [ "$OUT" = "$a" ]; then t_ok "${prog##*/} help $c = $c --help"
		else t_fail "${prog##*/} help $c = $c --help" "$(desc)"; fi
	done
}
helps "$NET" up down tap show
helps "$VM" run check
for p in "$NET" "$VM"; do
	run "$p" --help; a=$OUT
	run "$p" help
	t_check "${p##*/} help = --help" test "$RC" = 0 -a "$OUT" = "$a" -a -n "$a"
done

# --- one error style: usage errors are one line, exit 2, end with the
# --help to read; a mistyped option or command gets "did you mean"
usage() {
	local name=$1 re=$2; shift 2
	run "$@"
	if [ "$RC" = 2 ] && [ "$(wc -l <"$d/err")" = 1 ] && grep -Eq -- "$re" <<<"$ERR" &&
		grep -Eq -- "\\(try '[a-z-]+( [a-z]+)? --help'\\)\$" <<<"$ERR" && [ -z "$OUT" ]; then
		t_ok "$name"
	else
		t_fail "$name" "want exit 2, one line /$re/ ending with (try '... --help'); $(desc)"
	fi
}
usage "net: mistyped option" "^kvmlab-net: up: unknown option '--nta'; did you mean '--nat'\\?" \
	"$NET" up lab --cidr 10.9.0.1/24 --nta
usage "vm: mistyped option" "^kvmlab-vm: run: unknown option '--memm'; did you mean '--mem'\\?" \
	"$VM" run --memm 1G
usage "net: mistyped option with =value" "did you mean '--cidr'" "$NET" up lab --cdir=10.9.0.1/24
usage "net: mistyped command" "^kvmlab-net: unknown command 'shwo'; did you mean 'show'\\?" "$NET" shwo
usage "vm: mistyped command" "^kvmlab-vm: unknown command 'chekc'; did you mean 'check'\\?" "$VM" chekc
usage "net: mistyped --version" "did you mean '--version'" "$NET" --verison
usage "vm: mistyped --version" "did you mean '--version'" "$VM" --verison
usage "net: nothing close: no suggestion" "unknown option '--zzzzzz' \\(try" "$NET" up lab --zzzzzz
usage "net: missing value" "^kvmlab-net: up: --cidr needs a value" "$NET" up lab --cidr
usage "vm: missing value" "^kvmlab-vm: run: --mem needs a value" "$VM" run --mem
usage "vm: check takes no argument" "^kvmlab-vm: check: unexpected argument 'x'" "$VM" check x
usage "net: --uplink without --nat" "--uplink only applies with --nat" \
	"$NET" up lab --cidr 10.9.0.1/24 --uplink eth0

# --- a bad value is exit 1 in both programs: one line naming it
value() {
	local name=$1 re=$2; shift 2
	run "$@"
	if [ "$RC" = 1 ] && [ "$(wc -l <"$d/err")" = 1 ] && grep -Eq -- "$re" <<<"$ERR"; then t_ok "$name"
	else t_fail "$name" "want exit 1, one line /$re/; $(desc)"; fi
}
value "net: bad cidr" "cidr 10\\.9\\.0\\.0/24: host address is the network address" \
	"$NET" up lab --cidr 10.9.0.0/24
value "net: bad mtu" "mtu 1x: not a number" "$NET" up lab --cidr 10.9.0.1/24 --mtu 1x
value "vm: bad --mem (1x)" "--mem 1x: not a size" "$VM" run --kernel /nonexistent --mem 1x
value "vm: bad --cpus (two)" "--cpus two: not a number" "$VM" run --kernel /nonexistent --cpus two
value "vm: bad --mac" "--mac 01:00:00:00:00:01: want a unicast" "$VM" run --kernel /nonexistent --mac 01:00:00:00:00:01
value "vm: --nic without net= or tap=" "--nic mac=02:00:00:00:00:01: want net=NAME or tap=IFNAME" \
	"$VM" run --kernel /nonexistent --nic mac=02:00:00:00:00:01
value "vm: --nic unknown key" "--nic tap=t0,speed=10: 'speed=10': want net=NAME or tap=IFNAME" \
	"$VM" run --kernel /nonexistent --nic tap=t0,speed=10
value "vm: --nic bad queues" "--nic tap=t0,queues=9: queues=9: want 1\\.\\.8" \
	"$VM" run --kernel /nonexistent --nic tap=t0,queues=9
value "vm: --nic bad mac" "--nic tap=t0,mac=01:00:00:00:00:01: mac=01:00:00:00:00:01: want a unicast" \
	"$VM" run --kernel /nonexistent --nic tap=t0,mac=01:00:00:00:00:01
value "vm: five NICs" "--nic: at most 4 NICs in all" "$VM" run --kernel /nonexistent \
	--tap t0 --nic tap=t1 --nic tap=t2 --nic tap=t3 --nic tap=t4
value "vm: one network twice" "--nic lab: the VM already has a NIC on network lab" \
	"$VM" run --kernel /nonexistent --net lab --nic net=lab
value "vm: one tap twice" "--nic t0: tap t0 is already a NIC of this VM" \
	"$VM" run --kernel /nonexistent --tap t0 --nic tap=t0
value "vm: a missing tap named as the --nic it came from" "^kvmlab-vm: --nic kvmlabnosuch0: no such interface" \
	"$VM" run --kernel /nonexistent --nic tap=kvmlabnosuch0
value "vm: nine disks" "--disk d9: at most 8 disks" "$VM" run --kernel /nonexistent \
	--disk d1 --disk d2 --disk d3 --disk d4 --disk d5 --disk d6 --disk d7 --disk d8 --disk d9
value "net: missing --config file" "config $d/nope\\.conf: No such file" \
	"$NET" up lab --config "$d/nope.conf"
printf 'cidr 10.9.0.1/24\n# comment\n\nnta\n' >"$d/bad.conf"
value "net: --config unknown option names file:line and a close one" \
	"config $d/bad\\.conf:4: unknown option 'nta'; did you mean 'nat'\\?" "$NET" up lab --config "$d/bad.conf"
printf 'cidr\n' >"$d/noval.conf"
value "net: --config option without its value" "config $d/noval\\.conf:1: cidr needs a value" \
	"$NET" up lab --config "$d/noval.conf"
printf 'cidr 10.9.0.1/24\nuplink eth0\n' >"$d/uplink.conf"
run "$NET" up lab --config "$d/uplink.conf"
t_check "net: --config is checked like the command line (--uplink without --nat: 2)" \
	grep -q -- "--uplink only applies with --nat" <<<"$ERR"
t_finish
