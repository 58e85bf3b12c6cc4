# bash completion for kvmlab-net and kvmlab-vm. Installed as
# share/bash-completion/completions/{kvmlab-net,kvmlab-vm} (the same file).
# Commands and options come from the programs' own --help, so they never
# drift; network and tap names from `kvmlab-net show --json` (jq), or its
# text output where jq is missing.

# _kvmlab_help PROG [CMD]: every --option in that help text
_kvmlab_opts() {
	"$@" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u
}

# _kvmlab_cmds PROG: the command words of the top-level help
_kvmlab_cmds() {
	"$1" --help 2>/dev/null |
		awk '/^commands:/ { f = 1; next } /^$/ { f = 0 } f && /^  [a-z]/ { print $1 }' |
		sort -u
}

# _kvmlab_show NET_BIN WHAT: network names (WHAT=nets) or tap names (taps)
_kvmlab_show() {
	local bin=$1 what=$2
	if command -v jq >/dev/null 2>&1 && [ -z "${KVMLAB_COMP_NO_JQ:-}" ]; then
		case $what in
		nets) "$bin" show --json 2>/dev/null | jq -r '.networks[].name' 2>/dev/null ;;
		taps) "$bin" show --json 2>/dev/null | jq -r '.networks[].taps[].name' 2>/dev/null ;;
		esac
	else
		case $what in
		nets) "$bin" show 2>/dev/null | sed -n 's/^network //p' ;;
		taps) "$bin" show 2>/dev/null |
			sed -n 's/^  taps  *//p' | tr ' ' '\n' | sed 's/(.*//' | grep -vx -e '' -e none ;;
		esac
	fi
}

# kvmlab-net next to the program being completed, else the one in PATH
_kvmlab_net_bin() {
	local d=${1%/*}
	if [ "$d" != "$1" ] && [ -x "$d/kvmlab-net" ]; then
		echo "$d/kvmlab-net"
	else
		echo kvmlab-net
	fi
}

_kvmlab_net() {
	local prog=$1 cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd=${COMP_WORDS[1]:-} sub=${COMP_WORDS[2]:-} i nargs=0 net
	net=$(_kvmlab_net_bin "$prog")
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$(_kvmlab_cmds "$prog") --help --version" -- "$cur"))
		return
	fi
	case $prev in
	--net) COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" nets)" -- "$cur")); return ;;
	--uplink) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
	--owner) COMPREPLY=($(compgen -u -- "$cur")); return ;;
	--group) COMPREPLY=($(compgen -g -- "$cur")); return ;;
	--config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--proto) COMPREPLY=($(compgen -W "tcp udp" -- "$cur")); return ;;
	esac
	local help
	help=$("$prog" "$cmd" --help 2>/dev/null)
	# an option that takes a value ("--mtu N" in the help): nothing to offer
	if [[ $prev == --* ]] && grep -q -- "$prev [A-Z]" <<<"$help"; then
		return
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u)" -- "$cur"))
		return
	fi
	# words that are not options or option values so far
	for ((i = 2; i < COMP_CWORD; i++)); do
		[[ ${COMP_WORDS[i]} == -* ]] && continue
		[[ ${COMP_WORDS[i - 1]} == --* ]] && grep -q -- "${COMP_WORDS[i - 1]} [A-Z]" <<<"$help" && continue
		nargs=$((nargs + 1))
	done
	case $cmd in
	help) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "$(_kvmlab_cmds "$prog")" -- "$cur")) ;;
	up)
		if [ $nargs -eq 0 ]; then
			local confs
			confs=$(ls /etc/kvmlab/*.conf 2>/dev/null | sed 's|.*/||; s|\.conf$||')
			COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" nets) $confs" -- "$cur"))
		fi ;;
	down | show)
		[ $nargs -eq 0 ] && COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" nets)" -- "$cur")) ;;
	tap)
		if [ "$COMP_CWORD" -eq 2 ]; then
			COMPREPLY=($(compgen -W "add del" -- "$cur"))
		elif [ "$sub" = del ]; then
			COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" taps)" -- "$cur"))
		fi ;;
	lease | forward)
		if [ "$COMP_CWORD" -eq 2 ]; then
			local subs="add del"
			[ "$cmd" = lease ] && subs="add del take release"
			COMPREPLY=($(compgen -W "$subs" -- "$cur"))
		elif [ $nargs -eq 1 ]; then
			COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" nets)" -- "$cur"))
		elif [ "$cmd" = lease ] && [ $nargs -eq 2 ] && command -v jq >/dev/null 2>&1; then
			COMPREPLY=($(compgen -W "$("$net" show --json 2>/dev/null |
				jq -r --arg n "${COMP_WORDS[3]}" '.networks[] | select(.name == $n) | .leases[]?.vm' 2>/dev/null)" -- "$cur"))
		fi ;;
	esac
}

_kvmlab_vm() {
	local prog=$1 cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd=${COMP_WORDS[1]:-} net
	net=$(_kvmlab_net_bin "$prog")
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$(_kvmlab_cmds "$prog") --help --version" -- "$cur"))
		return
	fi
	case $prev in
	--kernel | --initrd) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--disk) # FILE, then ,ro ,cache=... ,aio=... after a comma
		if [[ $cur == *,* ]]; then
			COMPREPLY=($(compgen -P "${cur%,*}," -W "ro cache=writeback cache=none aio=auto aio=uring aio=thread" -- "${cur##*,}"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		return ;;
	--nic) # net=NAME or tap=IFNAME, then ,mac= ,queues= after a comma
		local last=${cur##*,} pre=
		[[ $cur == *,* ]] && pre=${cur%,*},
		case $last in
		net=*) COMPREPLY=($(compgen -P "${pre}net=" -W "$(_kvmlab_show "$net" nets)" -- "${last#net=}")) ;;
		tap=*) COMPREPLY=($(compgen -P "${pre}tap=" -W "$(_kvmlab_show "$net" taps)" -- "${last#tap=}")) ;;
		*) if [ -n "$pre" ]; then
			local k keys=
			for k in net= tap= mac= queues=; do [[ ,$pre == *,$k* ]] || keys="$keys $k"; done
			COMPREPLY=($(compgen -P "$pre" -W "$keys" -- "$last"))
		   else
			COMPREPLY=($(compgen -W "net= tap=" -- "$last"))
		   fi ;;
		esac
		compopt -o nospace 2>/dev/null
		return ;;
	--net) COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" nets)" -- "$cur")); return ;;
	--tap) COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" taps)" -- "$cur")); return ;;
	--console) COMPREPLY=($(compgen -W "stdio none pty file:" -- "$cur")); return ;;
	--vhost) COMPREPLY=($(compgen -W "auto on off" -- "$cur")); return ;;
	--virtio-transport) COMPREPLY=($(compgen -W "pci mmio" -- "$cur")); return ;;
	--on-reboot) COMPREPLY=($(compgen -W "exit restart" -- "$cur")); return ;;
	--*) "$prog" "$cmd" --help 2>/dev/null | grep -q -- "$prev [A-Z]" && return ;;
	esac
	case $cmd in
	help) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "$(_kvmlab_cmds "$prog")" -- "$cur")) ;;
	dhcp) [[ $cur != -* ]] && COMPREPLY=($(compgen -W "$(_kvmlab_show "$net" nets)" -- "$cur")) ;;
	list | stop | pause | resume | console) # the running VMs' names (list's first column)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$(_kvmlab_opts "$prog" "$cmd")" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$("$prog" list 2>/dev/null | awk 'NR > 1 { print $1 }')" -- "$cur"))
		fi ;;
	*) [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$(_kvmlab_opts "$prog" "$cmd")" -- "$cur")) ;;
	esac
}

complete -F _kvmlab_net kvmlab-net
complete -F _kvmlab_vm kvmlab-vm
