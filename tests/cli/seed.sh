#!/usr/bin/env bash
# scripts/build-guest --seed: a cloud-init NoCloud seed. Oracles: isoinfo
# (genisoimage's own reader) for the volume label and the files on the
# ISO, and the files themselves; bad input is one line and exit 1, with
# no output file left.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT" || exit 1
command -v genisoimage >/dev/null && command -v isoinfo >/dev/null ||
	{ t_skip "seed" "genisoimage/isoinfo not installed"; exit 0; }
w=$(mktemp -d /tmp/kvmlab-seed-test.XXXXXX) || exit 1
t_defer "rm -rf '$w'"
ssh-keygen -q -t ed25519 -N '' -C seedtest -f "$w/k" 2>/dev/null ||
	printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKsGWGmwf7d0pO0h1Sx2u1RXDTRZ7/Om3TvIrQ1rt/a+ seedtest\n' >"$w/k.pub"
key=$(cut -d' ' -f1,2 "$w/k.pub")

if scripts/build-guest --seed "$w/seed.iso" --ssh-key "$w/k.pub" --hostname web 2>"$w/err"; then
	t_ok "seed: builds an ISO"
else
	t_fail "seed: builds an ISO" "$(head -n1 "$w/err")"
	t_finish
fi
vol=$(isoinfo -d -i "$w/seed.iso" 2>/dev/null | awk -F': ' '/^Volume id:/ { print $2 }')
[ "$vol" = cidata ] && t_ok "seed: volume label is cidata" || t_fail "seed: volume label is cidata" "got '$vol'"
ud=$(isoinfo -J -x /user-data -i "$w/seed.iso" 2>/dev/null)
md=$(isoinfo -J -x /meta-data -i "$w/seed.iso" 2>/dev/null)
if [ "$(head -n1 <<<"$ud")" = '#cloud-config' ] && grep -qF -- "- $key" <<<"$ud" &&
	grep -q '^ssh_pwauth: false$' <<<"$ud"; then
	t_ok "seed: user-data is #cloud-config with the key and no passwords"
else
	t_fail "seed: user-data is #cloud-config with the key and no passwords" "$(head -c 200 <<<"$ud" | tr '\n' '|')"
fi
if grep -q '^instance-id: kvmlab-web-' <<<"$md" && grep -q '^local-hostname: web$' <<<"$md"; then
	t_ok "seed: meta-data has an instance id and the host name"
else
	t_fail "seed: meta-data has an instance id and the host name" "$(tr '\n' '|' <<<"$md")"
fi

scripts/build-guest --seed "$w/dir" --dir --ssh-key "$w/k.pub" 2>/dev/null
if [ -f "$w/dir/user-data" ] && [ -f "$w/dir/meta-data" ] && grep -qF -- "- $key" "$w/dir/user-data"; then
	t_ok "seed --dir: user-data and meta-data in a directory"
else
	t_fail "seed --dir: user-data and meta-data in a directory" "$(ls "$w/dir" 2>&1 | tr '\n' ' ')"
fi

bad() {  # bad NAME ARGS...: exit 1, one line naming the problem, no file
	local name=$1 rc n
	shift
	scripts/build-guest --seed "$w/bad.iso" "$@" 2>"$w/err"
	rc=$?
	n=$(wc -l <"$w/err")
	if [ $rc = 1 ] && [ "$n" = 1 ] && grep -q 'error:' "$w/err" && [ ! -e "$w/bad.iso" ]; then
		t_ok "seed: $name"
	else
		t_fail "seed: $name" "rc $rc, $n lines: $(head -c 160 "$w/err")"
	fi
}
bad "rejects a --ssh-key file that is no public key" --ssh-key /etc/hostname
bad "rejects a missing --ssh-key file" --ssh-key "$w/nope.pub"
bad "rejects a bad host name" --ssh-key "$w/k.pub" --hostname 'a b'
printf 'not cloud config\n' >"$w/ud"
bad "rejects user-data that cloud-init would ignore" --user-data "$w/ud"
t_finish
