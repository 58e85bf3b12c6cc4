# shellcheck shell=bash
# Shared by scripts/build-guest and scripts/testhost. Source it.
# Fetches the Debian cloud kernel once into build/, and computes module
# load orders from the package's own modules.dep, so nothing here names a
# kernel version or a dependency by hand.
#
# After kl_kernel_fetch:
#   KL_KVER   the kernel release, e.g. 6.1.0-56-cloud-amd64
#   KL_KROOT  the unpacked package root (boot/, lib/modules/$KL_KVER/)
#   KL_KIMAGE the bzImage
#   KL_KDEB   the .deb it came from (its name is the cache key)

KL_TOP=${KL_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
KL_BUILD=${KVMLAB_BUILD:-$KL_TOP/build}
# The meta package that tracks the current cloud kernel; override with
# KVMLAB_KERNEL_PKG=linux-image-<ver>-cloud-amd64 to pin one.
KL_META_PKG=${KVMLAB_KERNEL_META:-linux-image-cloud-amd64}

kl_log() { echo "${KL_PROG:-kernel.sh}: $*" >&2; }
kl_die() { kl_log "error: $*"; exit 1; }

# The versioned package the meta package points at, from the local apt
# lists (no network). Empty if apt does not know it.
kl_kernel_pkg() {
	if [ -n "${KVMLAB_KERNEL_PKG:-}" ]; then
		echo "$KVMLAB_KERNEL_PKG"
		return
	fi
	# apt-cache takes a second; remember its answer until apt's lists
	# change (apt-get update renames files there, touching the directory)
	local memo=$KL_BUILD/debs/.resolved-$KL_META_PKG
	if [ -s "$memo" ] && [ "$memo" -nt /var/lib/apt/lists ]; then
		cat "$memo"
		return
	fi
	apt-cache depends "$KL_META_PKG" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }' >"$memo.tmp" || true
	if [ -s "$memo.tmp" ]; then mv "$memo.tmp" "$memo"; cat "$memo"; else rm -f "$memo.tmp"; fi
}

kl_kernel_fetch() {
	local debs=$KL_BUILD/debs pkg deb tmp
	mkdir -p "$debs"
	pkg=''
	[ -n "${KL_KDEB_FILE:-}" ] || pkg=$(kl_kernel_pkg)
	if [ -n "${KL_KDEB_FILE:-}" ]; then
		# a given package file (scripts/build-guest: KVMLAB_GUEST_KERNEL_DEB)
		deb=$(realpath -e "$KL_KDEB_FILE" 2>/dev/null) || kl_die "$KL_KDEB_FILE: no such file"
	elif [ -n "$pkg" ]; then
		# (no match is normal before the first download: not an error
		# under the callers' pipefail)
		deb=$(ls -1 "$debs/${pkg}_"*_amd64.deb 2>/dev/null | sort -V | tail -n1) || true
		if [ -z "$deb" ]; then
			kl_log "downloading $pkg"
			# apt's sandbox user cannot write into build/; download as
			# ourselves into a private temporary directory, then move.
			tmp=$(mktemp -d "$debs/.dl.XXXXXX")
			if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg" >&2); then
				rm -rf "$tmp"
				kl_die "apt-get download $pkg failed"
			fi
			mv "$tmp"/*.deb "$debs/"
			rm -rf "$tmp"
			deb=$(ls -1 "$debs/${pkg}_"*_amd64.deb | sort -V | tail -n1)
		fi
	else
		# apt lists missing (e.g. offline container): use a cached one
		deb=$(ls -1 "$debs"/linux-image-*-cloud-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -n1) || true
		[ -n "$deb" ] || kl_die "cannot resolve $KL_META_PKG (apt-cache) and no cached kernel in $debs"
	fi
	export KL_KDEB=$deb
	# one unpacker at a time; the others wait and find it done
	local lk
	exec {lk}>"$KL_BUILD/.kernel.lock"
	flock "$lk"
	local base
	base=$(basename "$deb" .deb)
	KL_KROOT=$KL_BUILD/kernel/$base
	if [ ! -f "$KL_KROOT/.unpacked" ]; then
		kl_log "unpacking $(basename "$deb")"
		rm -rf "$KL_KROOT"
		mkdir -p "$KL_KROOT"
		dpkg-deb -x "$deb" "$KL_KROOT"
		# Packages built for a merged /usr (Debian 13 on) ship their
		# modules under usr/lib/modules; give them the path depmod -b
		# and the rest of this file expect, as the installed system has.
		if [ ! -d "$KL_KROOT/lib/modules" ] && [ -d "$KL_KROOT/usr/lib/modules" ]; then
			ln -s usr/lib "$KL_KROOT/lib"
		fi
		if [ ! -d "$KL_KROOT/lib/modules" ]; then
			# No modules in the package: a kernel built without module
			# support (CONFIG_MODULES=n, as Firecracker's guest kernels
			# are), or one whose modules come in a package of their own
			# (Ubuntu's linux-modules-*). Either way only what is built
			# in drives the guest. Its release comes from its one bzImage.
			local imgs=("$KL_KROOT"/boot/vmlinuz-*)
			[ ${#imgs[@]} = 1 ] && [ -f "${imgs[0]}" ] ||
				{ rm -rf "$KL_KROOT"; kl_die "no lib/modules and not one boot/vmlinuz-* in $deb"; }
			KL_KVER=${imgs[0]##*/vmlinuz-}
			mkdir -p "$KL_KROOT/lib/modules/$KL_KVER"
			if grep -qs '^CONFIG_MODULES=y' "$KL_KROOT/boot/config-$KL_KVER"; then
				echo "its package ships no modules: only what is built in drives the guest"
			else
				echo "built without module support: what the guest needs must be built in"
			fi >"$KL_KROOT/.monolithic"
		fi
		KL_KVER=$(ls -1 "$KL_KROOT/lib/modules" | head -n1)
		# The package ships no modules.dep (the postinst runs depmod).
		[ -f "$KL_KROOT/.monolithic" ] || depmod -b "$KL_KROOT" "$KL_KVER"
		touch "$KL_KROOT/.unpacked"
	fi
	flock -u "$lk"
	exec {lk}>&-
	KL_KVER=$(ls -1 "$KL_KROOT/lib/modules" | head -n1)
	KL_KIMAGE=$KL_KROOT/boot/vmlinuz-$KL_KVER
	[ -f "$KL_KIMAGE" ] || kl_die "no bzImage in $deb"
}

# kl_mod_order NAME...: print the module files (paths relative to
# lib/modules/$KL_KVER) that NAMEs need, dependencies first, each once.
# Names that are built into the kernel are skipped; unknown names warn.
# "pre:" soft dependencies are followed too (libcrc32c wants crc32c).
kl_mod_order() {
	local mdir=$KL_KROOT/lib/modules/$KL_KVER
	if [ -f "$KL_KROOT/.monolithic" ]; then
		kl_log "$KL_KVER: $(cat "$KL_KROOT/.monolithic")"
		return 0
	fi
	awk -v names="$*" '
	function norm(s) { sub(/.*\//, "", s); sub(/\.ko(\.[a-z]+)?$/, "", s); gsub(/-/, "_", s); return s }
	function visit(p,   i, n, d) {
		if (p in seen) return
		seen[p] = 1
		n = split(deps[p], d, " ")
		for (i = 1; i <= n; i++) visit(d[i])
		if (norm(p) in soft) {
			n = split(soft[norm(p)], d, " ")
			for (i = 1; i <= n; i++) if (d[i] in path) visit(path[d[i]])
		}
		print p
	}
	FILENAME ~ /modules\.dep$/ {
		p = $1; sub(/:$/, "", p)
		path[norm(p)] = p
		$1 = ""; deps[p] = $0
		next
	}
	FILENAME ~ /modules\.softdep$/ && $1 == "softdep" {
		m = $2; gsub(/-/, "_", m); pre = 0
		for (i = 3; i <= NF; i++) {
			if ($i == "pre:") { pre = 1; continue }
			if ($i == "post:") { pre = 0; continue }
			if (pre) { x = $i; gsub(/-/, "_", x); soft[m] = soft[m] " " x }
		}
		next
	}
	FILENAME ~ /modules\.builtin$/ { builtin[norm($1)] = 1; next }
	END {
		n = split(names, want, " ")
		for (i = 1; i <= n; i++) {
			m = want[i]; gsub(/-/, "_", m)
			if (m in path) visit(path[m])
			else if (!(m in builtin)) printf "warning: module %s not in this kernel\n", want[i] > "/dev/stderr"
		}
	}' "$mdir/modules.dep" "$mdir/modules.softdep" "$mdir/modules.builtin"
}

# kl_mod_install DEST NAME...: copy NAMEs and their dependencies into
# DEST/ uncompressed (busybox insmod does not decompress), and write
# DEST/order: one file name per line, in load order.
kl_mod_install() {
	local dest=$1 rel f name
	shift
	local mdir=$KL_KROOT/lib/modules/$KL_KVER
	mkdir -p "$dest"
	: >"$dest/order"
	while IFS= read -r rel; do
		f=$mdir/$rel
		name=$(basename "$rel")
		case $name in
		*.ko.xz) name=${name%.xz}; xz -dc "$f" >"$dest/$name" ;;
		*.ko.zst) name=${name%.zst}; zstd -qdc "$f" >"$dest/$name" ;;
		*.ko.gz) name=${name%.gz}; gzip -dc "$f" >"$dest/$name" ;;
		*) cp "$f" "$dest/$name" ;;
		esac
		echo "$name" >>"$dest/order"
	done < <(kl_mod_order "$@")
}

# kl_vmlinux BZIMAGE OUT: the uncompressed ELF vmlinux inside a bzImage
# (its payload, per the setup header's payload_offset/payload_length, less
# the 4-byte size the kernel's build appends), for kvmlab-vm's ELF boot.
# Returns 1 with a warning when the compressor's tool is missing.
kl_vmlinux() {
	local img=$1 out=$2 ss po pl start magic dec
	ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$img" | tr -d ' ')
	[ "$ss" = 0 ] && ss=4
	po=$(od -An -tu4 -j $((0x248)) -N4 "$img" | tr -d ' ')
	pl=$(od -An -tu4 -j $((0x24c)) -N4 "$img" | tr -d ' ')
	start=$(((ss + 1) * 512 + po))
	magic=$(od -An -tx1 -j "$start" -N6 "$img" | tr -d ' \n')
	case $magic in
	1f8b*) dec="gzip -dc" ;;
	fd377a585a00) dec="xz -dc" ;;
	5d00*) dec="xz -dc --format=lzma" ;;
	28b52ffd*) dec="zstd -dcq" ;;
	02214c18*) dec="lz4 -dc" ;;
	425a68*) dec="bzip2 -dc" ;;
	*) kl_log "warning: $img: payload compressed in an unknown format ($magic); no vmlinux"; return 1 ;;
	esac
	command -v "${dec%% *}" >/dev/null ||
		{ kl_log "warning: ${dec%% *} not installed; no vmlinux"; return 1; }
	tail -c +$((start + 1)) "$img" | head -c $((pl - 4)) | $dec >"$out.tmp" 2>/dev/null
	if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" != 177ELF ]; then
		rm -f "$out.tmp"
		kl_log "warning: $img: the payload did not unpack to an ELF file; no vmlinux"
		return 1
	fi
	mv "$out.tmp" "$out"
}

# kl_busybox_tree DEST: busybox-static at DEST/bin/busybox, with a link
# for every applet, made now so that init does not have to.
kl_busybox_tree() {
	local dest=$1 bb a
	bb=$(command -v busybox) || kl_die "busybox-static not installed"
	case $(ldd "$bb" 2>&1) in
	*'not a dynamic'*) ;;
	*) kl_die "$bb is not static (install busybox-static)" ;;
	esac
	mkdir -p "$dest/bin" "$dest/sbin" "$dest/usr/bin" "$dest/usr/sbin"
	cp "$bb" "$dest/bin/busybox"
	for a in $("$dest/bin/busybox" --list-full); do
		[ -e "$dest/$a" ] || ln -s /bin/busybox "$dest/$a"
	done
}

# kl_cpio DIR OUT: a newc archive of DIR, owned by root, in a stable order
kl_cpio() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0) >"$2"
}
