#!/usr/bin/env bash
# The installed library: libkvmlabnet.so with its soname and libkvmlabnet.a
# export only kl_ names (nm), every function of net.h is exported, and a
# small program builds against the installed kvmlabnet.pc, links (shared
# and static, next to its own nl_close, a name libnl-3 also exports) and
# gives the answers worked out by hand.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
d=$(mktemp -d /tmp/kvmlab-pkglib.XXXXXX)
t_defer "rm -rf '$d'"
for t in nm readelf pkg-config; do
	command -v $t >/dev/null || { t_fail "$t installed"; t_finish; }
done
if ! make -s install DESTDIR="$d/root" >"$d/log" 2>&1; then
	t_fail "make install DESTDIR=..." "$(tail -3 "$d/log" | paste -sd' ')"; t_finish
fi
L=$d/root/usr/local/lib
so=$(readlink -f "$L/libkvmlabnet.so")

t_check "soname libkvmlabnet.so.0" bash -c "readelf -d '$so' | grep -q 'SONAME.*\\[libkvmlabnet.so.0\\]'"
# defined dynamic symbols, minus the version node (type A)
nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u >"$d/so.syms"
bad=$(grep -v '^kl_' "$d/so.syms" | head -5 | paste -sd' ')
t_check "shared: only kl_ symbols exported ($(wc -l <"$d/so.syms"))${bad:+ (also: $bad)}" test -z "$bad" -a -s "$d/so.syms"
t_check "shared: nl_close is not exported" bash -c "! grep -qx nl_close '$d/so.syms'"
nm -g --defined-only "$L/libkvmlabnet.a" | awk 'NF == 3 { print $3 }' | sort -u >"$d/a.syms"
bad=$(grep -v '^kl_' "$d/a.syms" | head -5 | paste -sd' ')
t_check "static: only kl_ globals ($(wc -l <"$d/a.syms"))${bad:+ (also: $bad)}" test -z "$bad" -a -s "$d/a.syms"
# every function declared in the installed header is exported by both
grep -o '\bkl_[a-z0-9_]*(' "$d/root/usr/local/include/kvmlab/net.h" | tr -d '(' | sort -u >"$d/h.syms"
miss=$(comm -23 "$d/h.syms" "$d/so.syms" | paste -sd' ')
t_check "shared: every net.h function exported${miss:+ (missing: $miss)}" test -z "$miss"
miss=$(comm -23 "$d/h.syms" "$d/a.syms" | paste -sd' ')
t_check "static: every net.h function global${miss:+ (missing: $miss)}" test -z "$miss"

cat >"$d/prog.c" <<'C'
#include <kvmlab/net.h>
#include <stdio.h>
/* libnl-3 has one too: the library must not clash with it */
void nl_close(void *sk);
void nl_close(void *sk) { (void)sk; }
int main(void)
{
	char br[KL_NAME_MAX + 1];
	const char *why = "";
	uint32_t a = 0;
	unsigned p = 0;
	int ok = kl_cidr_parse("192.168.57.1/24", &a, &p, &why);
	int bad = kl_cidr_parse("192.168.57.0/24", &a, &p, &why);
	kl_bridge_name("lab", br);
	printf("%d %08x/%u %s %d %s\n", ok, (unsigned)a, p, br, bad, why);
	nl_close(NULL);
	return 0;
}
C
want="0 c0a83901/24 kl-lab -22 host address is the network address"
export PKG_CONFIG_SYSROOT_DIR=$d/root PKG_CONFIG_LIBDIR=$L/pkgconfig:/usr/lib/x86_64-linux-gnu/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig
flags=$(pkg-config --cflags --libs kvmlabnet 2>"$d/err")
t_check "pkg-config finds the installed kvmlabnet.pc ($flags)" test $? = 0
t_check "pkg-config version is VERSION" test "$(pkg-config --modversion kvmlabnet)" = "$(cat VERSION)"
CC=${CC:-cc}
# shellcheck disable=SC2086
if $CC -Wall -Werror -o "$d/prog" "$d/prog.c" $flags 2>"$d/err"; then
	t_ok "builds and links against the .pc (shared)"
	out=$(LD_LIBRARY_PATH=$L "$d/prog" 2>&1)
	t_check "shared: runs with the right answers ($out)" test "$out" = "$want"
	t_check "shared: uses the installed libkvmlabnet.so.0" bash -c \
		"LD_LIBRARY_PATH='$L' ldd '$d/prog' | grep -q 'libkvmlabnet.so.0 => $L/libkvmlabnet.so.0'"
else
	t_fail "builds and links against the .pc (shared)" "$(head -3 "$d/err" | paste -sd' ')"
fi
# static: the archive plus what pkg-config --static adds after it
sflags=$(pkg-config --static --libs kvmlabnet | sed 's/-lkvmlabnet//')
# shellcheck disable=SC2086
if $CC -Wall -Werror -o "$d/sprog" "$d/prog.c" $(pkg-config --cflags kvmlabnet) "$L/libkvmlabnet.a" $sflags 2>"$d/err"; then
	t_ok "builds and links against the static library"
	out=$("$d/sprog" 2>&1)
	t_check "static: runs with the right answers ($out)" test "$out" = "$want"
	t_check "static: no libkvmlabnet.so needed" bash -c "! ldd '$d/sprog' | grep -q kvmlabnet"
else
	t_fail "builds and links against the static library" "$(head -3 "$d/err" | paste -sd' ')"
fi
t_finish
