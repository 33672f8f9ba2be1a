#!/usr/bin/env bash
# lazypages check: the positive case (root, which is how criu restore runs) must say "ok",
# list every feature the kernel reports by name, and emit valid JSON; the negative case (an
# unprivileged uid without capabilities) must fail with a fix.
# Exit 0 pass, 1 fail, 77 skip.
# shellcheck disable=SC2015  # "cond && ok ... || fail ...": ok() always succeeds
set -u
B=${B:-build}
LP=$B/lazypages
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

[ -x "$LP" ] || { echo "FAIL: $LP not built"; exit 1; }
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
if [ "$(id -u)" -ne 0 ]; then
	echo "needs root (criu restore runs as root); skipping"
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

# --- usage ------------------------------------------------------------------------------
"$LP" check --help >"$tmp/help" 2>&1 && grep -q -- '--json' "$tmp/help" &&
	ok "--help" || fail "--help (exit or text)"
"$LP" check --no-such-option >/dev/null 2>&1
[ $? -eq 2 ] && ok "bad option exits 2" || fail "bad option does not exit 2"

# --- positive: text -----------------------------------------------------------------------
"$LP" check >"$tmp/text" 2>"$tmp/text.err"
rc=$?
cat "$tmp/text"
[ $rc -eq 0 ] && ok "check exits 0" || fail "check exits $rc (stderr: $(cat "$tmp/text.err"))"
grep -q '^verdict: ok' "$tmp/text" && ok "verdict ok" || fail "no 'verdict: ok' line"

# --- positive: JSON -----------------------------------------------------------------------
"$LP" check --json >"$tmp/json" 2>"$tmp/json.err"
rc=$?
[ $rc -eq 0 ] && ok "check --json exits 0" || fail "check --json exits $rc"
python3 -m json.tool "$tmp/json" >/dev/null && ok "JSON parses" || fail "JSON does not parse"

# Bit -> name, as in the kernel's include/uapi/linux/userfaultfd.h.
names17="PAGEFAULT_FLAG_WP EVENT_FORK EVENT_REMAP EVENT_REMOVE MISSING_HUGETLBFS MISSING_SHMEM
EVENT_UNMAP SIGBUS THREAD_ID MINOR_HUGETLBFS MINOR_SHMEM EXACT_ADDRESS WP_HUGETLBFS_SHMEM
WP_UNPOPULATED POISON WP_ASYNC MOVE"
# MOVE (bit 16, the last of the 17) arrived in Linux 6.8: from there on all 17 must be there.
read -r kmaj kmin _ <<<"$(uname -r | sed -E 's/^([0-9]+)\.([0-9]+).*/\1 \2 x/')"
want_all=0
if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -ge 8 ]; }; then want_all=1; fi

# shellcheck disable=SC2086  # one argument per name
python3 - "$tmp/json" "$want_all" $names17 <<'EOF' || fails=$((fails + 1))
import json, sys
path, want_all, names = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
d = json.load(open(path))
bad = []
def need(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        bad.append(what)
need(d.get("verdict") == "ok", "JSON verdict is ok (got %r)" % d.get("verdict"))
mask = int(d["features_mask"], 16)
expect = [n for b, n in enumerate(names) if mask & (1 << b)]
expect += ["bit%d" % b for b in range(len(names), 64) if mask & (1 << b)]
need(d["features"] == expect, "features list matches features_mask %s" % d["features_mask"])
if want_all:
    need(all(n in d["features"] for n in names), "all 17 features named: %s" % " ".join(names))
io = d["ioctls"]
need(io["api"] == ["REGISTER", "UNREGISTER", "API"], "api ioctls by name: %s" % io["api"])
need(all(n in io["range"] for n in ("WAKE", "COPY", "ZEROPAGE")), "range ioctls: %s" % io["range"])
checks = {c["name"]: c for c in d["checks"]}
for n in ("userfaultfd", "uffdio_api", "criu_features", "register_anon", "fault_round_trip"):
    need(n in checks and checks[n]["ok"], "check %s ok" % n)
need(all(set(c) >= {"name", "ok", "fix", "detail"} for c in d["checks"]), "checks carry ok/fix")
need("CAP_SYS_PTRACE" in d["capabilities"], "capabilities listed")
sys.exit(1 if bad else 0)
EOF

# Every name the JSON lists must also be in the text output's features line.
feat_line=$(grep '^features 0x' "$tmp/text")
for n in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["features"]))' "$tmp/json"); do
	[[ " ${feat_line#*: } " == *" $n "* ]] || fail "text output lacks feature $n"
done
if [ "$want_all" -eq 1 ]; then
	for n in $names17; do
		[[ " ${feat_line#*: } " == *" $n "* ]] || fail "text output lacks feature $n"
	done
fi
ok "text features line: ${feat_line}"

# --- negative: an unprivileged uid without capabilities ----------------------------------
if ! command -v setpriv >/dev/null; then
	echo "setpriv missing: negative case not run"
else
	cp "$LP" "$tmp/lazypages" && chmod 755 "$tmp/lazypages"
	unpriv=(setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs
		--inh-caps=-all --bounding-set=-all)
	sysctl=$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null || echo absent)
	"${unpriv[@]}" "$tmp/lazypages" check >"$tmp/neg" 2>&1
	rc=$?
	cat "$tmp/neg"
	[ $rc -eq 1 ] && ok "unprivileged check exits 1" || fail "unprivileged check exits $rc, want 1"
	grep -q '^verdict: no' "$tmp/neg" && ok "unprivileged verdict no" || fail "no 'verdict: no'"
	if [ "$sysctl" = 0 ]; then
		# userfaultfd(2) itself is refused: the fix names the sysctl and the capability.
		grep -q 'FAIL  userfaultfd(2)' "$tmp/neg" && ok "userfaultfd(2) reported as failing" ||
			fail "userfaultfd(2) not reported as failing"
		grep -q 'fix: sysctl -w vm.unprivileged_userfaultfd=1' "$tmp/neg" &&
			ok "fix names the sysctl" || fail "fix does not name the sysctl"
	fi
	# Either way EVENT_FORK needs CAP_SYS_PTRACE, which this uid lacks.
	grep -q 'fix: .*CAP_SYS_PTRACE' "$tmp/neg" && ok "fix names CAP_SYS_PTRACE" ||
		fail "no fix naming CAP_SYS_PTRACE"

	"${unpriv[@]}" "$tmp/lazypages" check --json >"$tmp/neg.json" 2>/dev/null
	rc=$?
	[ $rc -eq 1 ] && ok "unprivileged check --json exits 1" || fail "--json exits $rc, want 1"
	python3 - "$tmp/neg.json" <<'EOF' || fails=$((fails + 1))
import json, sys
d = json.load(open(sys.argv[1]))
failed = [c for c in d["checks"] if not c["ok"]]
ok = d["verdict"] == "no" and failed and all(c["fix"] for c in failed)
print(("ok" if ok else "FAIL") + ": negative JSON verdict %s, failing checks with fixes: %s"
      % (d["verdict"], [c["name"] for c in failed]))
sys.exit(0 if ok else 1)
EOF
fi

# --- negative: root inside a new user namespace ------------------------------------------
# Its capabilities are not CAP_SYS_PTRACE in the initial namespace, which is what counts.
if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 0 ] &&
	unshare -U -r true 2>/dev/null; then
	unshare -U -r "$LP" check >"$tmp/userns" 2>&1
	rc=$?
	[ $rc -eq 1 ] && ok "check in a user namespace exits 1" || fail "userns check exits $rc"
	grep -q 'fix: this process runs in a user namespace' "$tmp/userns" &&
		ok "fix explains the user namespace" || { cat "$tmp/userns"; fail "no userns fix"; }
else
	echo "user namespace case not run (sysctl not 0 or unshare -U unavailable)"
fi

if [ $fails -gt 0 ]; then
	echo "check.sh: $fails failure(s)"
	exit 1
fi
echo "check.sh: all passed"
