# shellcheck shell=bash
# Sourced by the shell tests that start TCP servers on loopback.
#
# lp_free_port: print a TCP port that no socket on this machine uses now, below the
# kernel's ephemeral range (ip_local_port_range), so that no outgoing connection can take
# it before the test's server binds it. A random port in 20000..32767 collided with an
# ephemeral one in a CI run ("Address already in use").
lp_free_port() {
	local lo=20000 hi=32767 eph p _
	if read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
		[ "$eph" -gt $((lo + 1000)) ]; then
		hi=$((eph - 1))
	fi
	for _ in $(seq 50); do
		p=$((lo + RANDOM % (hi - lo + 1)))
		if ! ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	echo "$((lo + RANDOM % (hi - lo + 1)))"
}
