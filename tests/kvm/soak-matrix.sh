#!/usr/bin/env bash
# Screen test-host configurations against the nested-KVM early-boot hang
# (issue 8), inside ONE test-host boot (it needs kvm_amd unloaded and
# reloaded, so only there):
#   flock /work/testhost.lock scripts/testhost --tcg single --timeout 840 -- \
#     bash tests/kvm/soak-matrix.sh 'vgif=0|' '|nopvspin' ...
# Each argument is "KVM_AMD_OPTIONS|GUEST_KARGS[|N]": kvm_amd is reloaded
# with "nested=0 npt=0|1 KVM_AMD_OPTIONS" (npt as the test host loaded it)
# and tests/kvm/soak.sh boots the
# default guest N times (default 6) with GUEST_KARGS added, stopping at the
# first hang. Single-threaded TCG is the amplifier: there the unpatched
# configuration hangs in most boots, so a few clean boots in a row are
# already a strong signal. One summary line per configuration.
set -u
cd "$(dirname "$0")/../.." || exit 1
[ -n "${KVMLAB_IN_TESTHOST:-}" ] || { echo "not ok - soak-matrix # only inside scripts/testhost"; exit 1; }
ko=/lib/modules/$(grep -m1 'kvm.amd' /lib/modules/order)
npt=$(tr YN 10 </sys/module/kvm_amd/parameters/npt)
cur="nested=0 npt=$npt"
sum=()
for c in "$@"; do
	IFS='|' read -r amd kargs n <<<"$c"
	want="nested=0 npt=$npt${amd:+ $amd}"
	if [ "$want" != "$cur" ]; then
		rmmod kvm_amd || { echo "not ok - soak-matrix: rmmod kvm_amd"; exit 1; }
		# shellcheck disable=SC2086
		insmod "$ko" $want || { echo "not ok - soak-matrix: insmod kvm_amd $want"; exit 1; }
		cur=$want
	fi
	echo "# ==== config: kvm_amd [$want] guest [${kargs}] N=${n:-6}"
	out=$(env KVMLAB_SOAK_KARGS="$kargs" KVMLAB_SOAK_DUMP=light KVMLAB_SOAK_FIRST_FAIL=1 \
		KVMLAB_SOAK_STALL="${KVMLAB_SOAK_STALL:-12}" KVMLAB_SOAK_BUDGET="${KVMLAB_SOAK_BUDGET:-400}" \
		bash tests/kvm/soak.sh "${n:-6}" 2>&1)
	printf '%s\n' "$out" | sed 's/^ok - /# &/; s/^not ok - /# &/'
	ok=$(printf '%s\n' "$out" | grep -c '^# boot [0-9]*: ok')
	bad=$(printf '%s\n' "$out" | grep -c '^not ok - soak: boot')
	sum+=("# matrix: kvm_amd [$want] guest [$kargs]: $ok ok, $bad bad")
done
printf '%s\n' "${sum[@]}"
