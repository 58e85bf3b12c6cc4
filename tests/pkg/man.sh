#!/usr/bin/env bash
# The man pages: they build (scdoc), render (man -l), lint clean
# (groff -ww; mandoc -Tlint at error level: scdoc's own output has
# paragraph-macro style warnings), and never drift from the programs:
#   - each "## CMD" section of doc/PROG.N.scd lists, as "*--opt*" lines,
#     exactly the options that `PROG CMD --help` shows;
#   - the "# OPTIONS" section plus every command's options are exactly
#     the options of `PROG --help`;
#   - the commands of `PROG --help` are exactly the "## CMD" sections;
#   - the exit status table (doc/exit-status.txt) is in both pages and,
#     row for row, in README.md.
# Both sides are parsed here from their text; neither is generated from
# the other. To add an option: its --help line and a "*--opt*" entry.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
d=$(mktemp -d /tmp/kvmlab-pkgman.XXXXXX)
t_defer "rm -rf '$d'"
command -v scdoc >/dev/null || { t_fail "scdoc installed" "scripts/install-deps installs it"; t_finish; }
if ! make -s man >"$d/log" 2>&1; then
	t_fail "make man" "$(tail -3 "$d/log")"; t_finish
fi
t_ok "make man"

# opts_of FILE: the sorted --options in FILE (or stdin), --help excluded
opts_of() { grep -o -- '--[a-z][a-z0-9-]*' "${1:--}" | grep -vx -- --help | sort -u; }

# scd_section SCD SECTION: lines of "## SECTION" (or "# SECTION" with a #)
scd_section() {
	awk -v h="$2" '
		/^#+ / { on = ($0 == h) ; next }
		on' "$1"
}
# scd_opts SCD SECTION: the options defined in it ("*--opt*" at line start)
scd_opts() { scd_section "$1" "$2" | grep -o '^\*--[a-z][a-z0-9-]*\*' | tr -d '*' | grep -vx -- --help | sort -u; }

# same NAME A B: two sorted lists are equal, else say what differs
same() {
	local name=$1
	if diff <(printf '%s\n' "$2" | sed '/^$/d') <(printf '%s\n' "$3" | sed '/^$/d') >"$d/diff"; then
		t_ok "$name"
	else
		t_fail "$name" "$(sed -n 's/^< /only in --help: /p; s/^> /only in the man page: /p' "$d/diff" | paste -sd' ')"
	fi
}

for page in kvmlab-net.8 kvmlab-vm.1; do
	prog=${page%.*}
	bin=$KVMLAB_BUILD/$prog
	scd=doc/$page.scd
	man=build/man/$page
	[ -x "$bin" ] || { t_fail "$prog built" "$bin missing"; continue; }

	LC_ALL=C MANWIDTH=80 man -l "$man" >"$d/$page.txt" 2>"$d/$page.err"
	if [ $? = 0 ] && grep -q "^NAME" "$d/$page.txt" && grep -q "$prog - " "$d/$page.txt" &&
		grep -q "^EXIT STATUS" "$d/$page.txt" && [ ! -s "$d/$page.err" ]; then
		t_ok "$page renders with man -l"
	else
		t_fail "$page renders with man -l" "$(head -c 300 "$d/$page.err")"
	fi
	groff -ww -man -z "$man" >"$d/groff" 2>&1
	if [ ! -s "$d/groff" ]; then t_ok "$page: groff -ww clean"
	else t_fail "$page: groff -ww clean" "$(head -3 "$d/groff" | paste -sd' ')"; fi
	if command -v mandoc >/dev/null; then
		mandoc -Tlint -Werror "$man" >"$d/mandoc" 2>&1
		if [ ! -s "$d/mandoc" ]; then t_ok "$page: mandoc -Tlint -Werror clean"
		else t_fail "$page: mandoc -Tlint -Werror clean" "$(head -3 "$d/mandoc" | paste -sd' ')"; fi
	fi

	# commands: "## X" sections against the "commands:" block of --help
	man_cmds=$(grep '^## ' "$scd" | cut -c4- | sort -u)
	help_cmds=$("$bin" --help | awk '/^commands:/ { f = 1; next } /^$/ { f = 0 } f && /^  [a-z]/ { print $1 }' | sort -u)
	same "$prog: the commands of --help are the man page's" "$help_cmds" "$man_cmds"

	all=$(scd_opts "$scd" "# OPTIONS")
	for c in $man_cmds; do
		m=$(scd_opts "$scd" "## $c")
		all=$(printf '%s\n%s\n' "$all" "$m" | sed '/^$/d' | sort -u)
		[ "$c" = help ] && continue # `help --help` is the top-level help
		h=$("$bin" "$c" --help | opts_of)
		same "$prog $c: --help options = man page options ($(echo $h | wc -w))" "$h" "$m"
	done
	same "$prog: --help options = man page options (all)" "$("$bin" --help | opts_of)" "$all"

	# each option also appears in the rendered page
	miss=
	for o in $all; do grep -q -- "$o" "$d/$page.txt" || miss="$miss $o"; done
	t_check "$page: every option is in the rendered page${miss:+ (missing:$miss)}" test -z "$miss"

	# exit status table: in the rendered page (unwrapped), each row
	LC_ALL=C MANWIDTH=1000 man -l "$man" 2>/dev/null | sed 's/^ *//' >"$d/$page.wide"
	miss=
	while IFS=$'\t' read -r code text; do
		grep -qx -- "$code" "$d/$page.wide" && grep -qxF -- "$text" "$d/$page.wide" || miss="$miss $code"
	done <doc/exit-status.txt
	t_check "$page: the shared exit status table${miss:+ (missing:$miss)}" test -z "$miss"
done

miss=
while IFS=$'\t' read -r code text; do
	grep -qxF -- "| $code | $text |" README.md || miss="$miss $code"
done <doc/exit-status.txt
t_check "README.md: the same exit status table${miss:+ (rows missing or different:$miss)}" test -z "$miss"

# the check can fail: a page missing an option is caught
sed '/^\*--nat\*$/,+2d' doc/kvmlab-net.8.scd >"$d/drift.scd"
if [ "$(scd_opts "$d/drift.scd" "## up" | grep -c -- --nat)" = 0 ] &&
	[ "$(scd_opts doc/kvmlab-net.8.scd "## up" | grep -c -- --nat)" = 1 ]; then
	t_ok "drift check sees an option removed from the page"
else
	t_fail "drift check sees an option removed from the page"
fi
t_finish
