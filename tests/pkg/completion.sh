#!/usr/bin/env bash
# Bash completion (completion/kvmlab.bash), driven the way bash drives it
# (COMP_WORDS/COMP_CWORD, then the registered function): it loads,
# registers both programs, completes commands and `kvmlab-net up --<TAB>`
# to the options the man page lists for up, and network and tap names
# from a real network in a namespace (as root), with jq and without.
. "$(dirname "$0")/../lib.sh"
cd "$T_ROOT"
COMP=$T_ROOT/completion/kvmlab.bash
BIN=$KVMLAB_BUILD
[ -x "$BIN/kvmlab-net" ] || { t_fail "kvmlab-net built"; t_finish; }

# complete WORDS...: what bash would offer for the last word
complete_words() {
	bash -c '
		. "$1"; shift
		spec=$(complete -p "${1##*/}") || exit 1
		fn=${spec#*-F }; fn=${fn%% *}
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$COMP" "$@"
}
t_check "loads in bash and registers both programs" \
	bash -c ". '$COMP' && complete -p kvmlab-net | grep -q -- '-F ' && complete -p kvmlab-vm | grep -q -- '-F '"

# the man page's options for up, parsed from its source (not from --help)
want=$(awk '/^#+ / { on = ($0 == "## up"); next } on' doc/kvmlab-net.8.scd |
	grep -o '^\*--[a-z-]*\*' | tr -d '*' | sort)
got=$(PATH=$BIN:$PATH complete_words kvmlab-net up lab --)
if [ -n "$want" ] && [ "$got" = "$want" ]; then t_ok "kvmlab-net up --<TAB>: $(echo $got)"
else t_fail "kvmlab-net up --<TAB>" "got '$(echo $got)', man page says '$(echo $want)'"; fi
got=$(PATH=$BIN:$PATH complete_words kvmlab-net up lab --n)
t_check "kvmlab-net up --n<TAB>: --nat" test "$got" = --nat
got=$(complete_words "$BIN/kvmlab-net" "")
t_check "kvmlab-net <TAB>: the commands ($(echo $got))" \
	test "$(echo $got)" = "--help --version down forward help lease show tap up"
got=$(complete_words "$BIN/kvmlab-net" tap "")
t_check "kvmlab-net tap <TAB>: add del" test "$(echo $got)" = "add del"
got=$(complete_words "$BIN/kvmlab-net" up lab --mtu "")
t_check "kvmlab-net up lab --mtu <TAB>: nothing (a number)" test -z "$got"
got=$(complete_words "$BIN/kvmlab-vm" run --c)
t_check "kvmlab-vm run --c<TAB>: $(echo $got)" test "$(echo $got)" = "--cmdline --console --cpus"
got=$(complete_words "$BIN/kvmlab-vm" run --console "")
t_check "kvmlab-vm run --console <TAB>" test "$(echo $got)" = "file: none pty stdio"

if [ "$(id -u)" != 0 ]; then
	t_skip "network and tap names" "need root for a namespace"; t_finish
fi
t_netns_new ns pkgcomp || { t_fail "netns"; t_finish; }
st=$(mktemp -d /tmp/kvmlab-pkgcomp.XXXXXX)
t_defer "rm -rf '$st'"
export KVMLAB_STATE_DIR=$st
t_defer "ip netns exec $ns '$BIN/kvmlab-net' down klcomp"
ip netns exec "$ns" "$BIN/kvmlab-net" up klcomp --cidr 10.97.0.1/24 >/dev/null 2>&1 &&
	ip netns exec "$ns" "$BIN/kvmlab-net" tap add kct0 kct1 --net klcomp >/dev/null
t_check "a network with two taps in a namespace" test $? = 0
for jq in with without; do
	[ $jq = without ] && export KVMLAB_COMP_NO_JQ=1
	got=$(ip netns exec "$ns" env PATH="$BIN:$PATH" bash -c "$(declare -f complete_words); COMP='$COMP'; complete_words kvmlab-net down ''")
	t_check "kvmlab-net down <TAB> ($jq jq): klcomp" test "$got" = klcomp
	got=$(ip netns exec "$ns" env PATH="$BIN:$PATH" bash -c "$(declare -f complete_words); COMP='$COMP'; complete_words kvmlab-net tap del kc")
	t_check "kvmlab-net tap del kc<TAB> ($jq jq): kct0 kct1" test "$(echo $got)" = "kct0 kct1"
	got=$(ip netns exec "$ns" env PATH="$BIN:$PATH" bash -c "$(declare -f complete_words); COMP='$COMP'; complete_words kvmlab-vm run --net ''")
	t_check "kvmlab-vm run --net <TAB> ($jq jq): klcomp" test "$got" = klcomp
	got=$(ip netns exec "$ns" env PATH="$BIN:$PATH" bash -c "$(declare -f complete_words); COMP='$COMP'; complete_words kvmlab-net tap add x --net k")
	t_check "kvmlab-net tap add x --net k<TAB> ($jq jq): klcomp" test "$got" = klcomp
	got=$(ip netns exec "$ns" env PATH="$BIN:$PATH" bash -c "$(declare -f complete_words); COMP='$COMP'; complete_words kvmlab-vm run --nic net=k")
	t_check "kvmlab-vm run --nic net=k<TAB> ($jq jq): net=klcomp" test "$got" = net=klcomp
	got=$(ip netns exec "$ns" env PATH="$BIN:$PATH" bash -c "$(declare -f complete_words); COMP='$COMP'; complete_words kvmlab-vm run --nic mac=02:00:00:00:00:01,tap=kct")
	t_check "kvmlab-vm run --nic ...,tap=kct<TAB> ($jq jq): both taps" \
		test "$(echo $got)" = "mac=02:00:00:00:00:01,tap=kct0 mac=02:00:00:00:00:01,tap=kct1"
done
got=$(complete_words "$BIN/kvmlab-vm" run --nic "")
t_check "kvmlab-vm run --nic <TAB>: net= tap=" test "$(echo $got)" = "net= tap="
got=$(complete_words "$BIN/kvmlab-vm" run --nic tap=x,)
t_check "kvmlab-vm run --nic tap=x,<TAB>: the keys not given yet" \
	test "$(echo $got)" = "tap=x,mac= tap=x,net= tap=x,queues="
t_finish
