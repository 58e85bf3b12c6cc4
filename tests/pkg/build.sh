#!/usr/bin/env bash
# Build hygiene, each build in its own BUILD directory (removed after):
#   - the user's CFLAGS/CPPFLAGS only add: -std, -D_GNU_SOURCE and the
#     warnings stay, theirs come last; -Werror only with WERROR=1;
#   - make CFLAGS=-O1 WERROR=1 builds everything (gcc);
#   - make CC=clang WERROR=1 builds everything, its unit tests pass, and
#     it installs with PREFIX=/usr and a multiarch LIBDIR where those say.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
d=$(mktemp -d /tmp/kvmlab-pkgbuild.XXXXXX)
t_defer "rm -rf '$d'"
J=-j2

# run from `make WERROR=1 test` (CI), the outer make's command-line
# variables reach every make below through MAKEFLAGS: these checks need
# a make of their own
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES WERROR

# the compile line make would run for one file
# (make -n shows a recipe's continued lines as they are: join them)
mkline() { make -n "$@" 2>&1 | sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' | tr -s ' \t' '  ' | grep -- ' -c '; }
line=$(mkline BUILD="$d/n" CFLAGS=-O1 CPPFLAGS=-DKL_PKG_TEST=1 "$d/n/net/addr.o")
has() { grep -q -- " $1 " <<<" $line "; }
for f in -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -DKL_PKG_TEST=1 -O1; do
	t_check "make CFLAGS=-O1 CPPFLAGS=...: compiles with $f" has "$f"
done
t_check "CFLAGS=-O1 replaces the default -O2" bash -c "! grep -q -- ' -O2 ' <<<' $line '"
t_check "user CFLAGS come after ours (so they win)" bash -c \
	"[[ '$line' =~ -Wall.*-O1 ]] && [[ '$line' =~ -D_GNU_SOURCE.*-DKL_PKG_TEST=1 ]]"
t_check "no -Werror unless asked" bash -c "! grep -q -- -Werror <<<'$line'"
line=$(mkline BUILD="$d/n" WERROR=1 "$d/n/net/addr.o")
t_check "WERROR=1 adds -Werror" has -Werror
rm -rf "$d/n"

# gcc -O1, warnings as errors
if make -s $J BUILD="$d/o1" CFLAGS=-O1 WERROR=1 all >"$d/o1.log" 2>&1; then
	t_ok "make CFLAGS=-O1 WERROR=1 all (gcc)"
else
	t_fail "make CFLAGS=-O1 WERROR=1 all (gcc)" "$(grep -m3 -E 'error|warning' "$d/o1.log" | paste -sd' ')"
fi
rm -rf "$d/o1"

if ! command -v clang >/dev/null; then
	t_skip "clang build" "no clang"; t_finish
fi
if make -s $J BUILD="$d/clang" CC=clang WERROR=1 all unit >"$d/clang.log" 2>&1; then
	t_ok "make CC=clang WERROR=1 all unit"
	fails=0 n=0
	for b in "$d"/clang/tests/unit/*; do
		[ -x "$b" ] && [ -f "$b" ] || continue
		case $b in *.o | *.d) continue ;; esac
		n=$((n + 1))
		"$b" >"$d/unit.out" 2>&1 || { fails=$((fails + 1)); grep '^not ok' "$d/unit.out" | head -3; }
	done
	t_check "clang-built unit tests pass ($n programs)" test $fails = 0 -a $n -gt 0
else
	t_fail "make CC=clang WERROR=1 all unit" "$(grep -m3 -E 'error|warning' "$d/clang.log" | paste -sd' ')"
	t_finish
fi

# install the clang build the way a distribution would
if make -s BUILD="$d/clang" CC=clang WERROR=1 install DESTDIR="$d/root" PREFIX=/usr \
	LIBDIR=/usr/lib/x86_64-linux-gnu >"$d/inst.log" 2>&1; then
	t_ok "make install PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu"
	R=$d/root
	t_check "PREFIX=/usr: programs in /usr/bin" test -x "$R/usr/bin/kvmlab-net" -a -x "$R/usr/bin/kvmlab-vm"
	t_check "LIBDIR: library and .pc there" test -f "$R/usr/lib/x86_64-linux-gnu/libkvmlabnet.so.0" \
		-a -f "$R/usr/lib/x86_64-linux-gnu/pkgconfig/kvmlabnet.pc"
	t_check ".pc names LIBDIR" grep -qx 'libdir=/usr/lib/x86_64-linux-gnu' "$R/usr/lib/x86_64-linux-gnu/pkgconfig/kvmlabnet.pc"
	t_check "PREFIX=/usr: man pages in /usr/share/man" test -f "$R/usr/share/man/man8/kvmlab-net.8"
	t_check "unit runs /usr/bin/kvmlab-net" grep -q '^ExecStart=/usr/bin/kvmlab-net up' "$R/usr/lib/systemd/system/kvmlab-net@.service"
	t_check "kvmlab-vm's compiled-in guest path is PREFIX's (/usr/lib/kvmlab/guest)" \
		bash -c "'$R/usr/bin/kvmlab-vm' run --help | grep -q /usr/lib/kvmlab/guest"
	t_check "the man page names that path too" grep -q '/usr/lib/kvmlab/guest' "$R/usr/share/man/man1/kvmlab-vm.1"
else
	t_fail "make install PREFIX=/usr LIBDIR=..." "$(tail -3 "$d/inst.log" | paste -sd' ')"
fi
t_finish
