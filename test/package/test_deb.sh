#!/bin/sh
# test_deb.sh [--install] - builds the Debian package and checks it.
#
#   1. builds it from a clean copy of the tree (build-deb.sh, nocheck: the
#      test suite has its own targets);
#   2. its files: every expected path with its mode (the binary, the
#      conffile 0640, the unit, the man pages, the docs), and nothing that
#      matches none of the expected patterns;
#   3. its control data: conffiles is exactly /etc/whyops.conf, Depends has
#      adduser and the shared libraries, the maintainer scripts create the
#      user and carry dh_installsystemd's snippets;
#   4. the packaged binary, extracted: -V, its libraries resolve, and -t
#      with the packaged configuration: as shipped it may only lack
#      /var/lib/whyops (which the unit's StateDirectory= creates), and with
#      [events] file and spool_dir pointed into a temporary directory it is
#      "configuration OK", and started on a free port it answers /healthz,
#      /metrics and a keyless request (401), and exits 0 on SIGTERM;
#   5. the packaged unit: key settings and systemd-analyze security;
#   6. lintian on the .changes (the .deb and its -dbgsym): no error, no
#      warning.
#   --install (root, changes this system): dpkg -i, checks the user, the
#      conffile's owner and mode and -t as user whyops, then purges (and
#      removes the user and group if it created them).
#
# Prints one line per check and ends with "N passed, N failed"; the build
# log and the packages stay in the kept directory on failure.

# The sh -c '...' checks expand their arguments inside, on purpose.
# shellcheck disable=SC2016
set -u

here=$(cd "$(dirname "$0")" && pwd)
install=0
[ "${1:-}" = --install ] && install=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/whyops-pkgtest.XXXXXX")
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() {	# check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@" >"$tmp/out" 2>&1; then ok "$desc"; else
		fail "$desc"; sed 's/^/     /' "$tmp/out" | head -20
	fi
}
finish() {
	echo "$passed passed, $failed failed"
	if [ $failed -eq 0 ]; then rm -rf "$tmp"; else echo "(kept $tmp)"; fi
	[ $failed -eq 0 ] && [ $passed -gt 0 ]
	exit $?
}

# --- 1. build -----------------------------------------------------------
t0=$(date +%s)
if ! DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" \
    sh "$here/build-deb.sh" -q "$tmp/out-deb" >/dev/null; then
	fail "dpkg-buildpackage (log: $tmp/out-deb/build.log)"
	finish
fi
arch=$(dpkg --print-architecture)
version=$(dpkg-parsechangelog -l "$here/../../debian/changelog" -S Version)
deb="$tmp/out-deb/whyops-proxy_${version}_$arch.deb"
changes="$tmp/out-deb/whyops-proxy_${version}_$arch.changes"
if [ -f "$deb" ] && [ -f "$changes" ]; then
	ok "build whyops-proxy_${version}_$arch.deb ($(($(date +%s) - t0))s)"
else
	fail "build: no $deb or $changes"
	finish
fi

# --- 2. contents ----------------------------------------------------------
# "mode path" for every regular file, from dpkg-deb -c
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { p = $6; sub(/^\./, "", p); print $1, p }' \
    >"$tmp/files"

expect_file() {	# expect_file MODE PATH
	if grep -qx -- "$1 $2" "$tmp/files"; then ok "file $2 $1"
	else fail "file $2 $1: $(grep " $2\$" "$tmp/files" || echo missing)"; fi
}
expect_file -rwxr-xr-x /usr/sbin/whyops-proxy
expect_file -rw-r----- /etc/whyops.conf
expect_file -rw-r--r-- /lib/systemd/system/whyops-proxy.service
expect_file -rw-r--r-- /usr/share/man/man8/whyops-proxy.8.gz
expect_file -rw-r--r-- /usr/share/man/man5/whyops.conf.5.gz
expect_file -rw-r--r-- /usr/share/man/man7/whyops-events.7.gz
expect_file -rw-r--r-- /usr/share/doc/whyops-proxy/README.gz
expect_file -rw-r--r-- /usr/share/doc/whyops-proxy/copyright
expect_file -rw-r--r-- /usr/share/doc/whyops-proxy/changelog.Debian.gz
expect_file -rw-r--r-- /usr/share/doc/whyops-proxy/examples/events/README
expect_file -rw-r--r-- /usr/share/doc/whyops-proxy/examples/events/llm_response.json

# anything else is a stray file (a build artifact, a misplaced install)
awk '{ print $2 }' "$tmp/files" | grep -vxE '/usr/sbin/whyops-proxy|/etc/whyops\.conf|/lib/systemd/system/whyops-proxy\.service|/usr/share/man/man[578]/whyops[-a-z.]*\.[578]\.gz|/usr/share/lintian/overrides/whyops-proxy|/usr/share/doc/whyops-proxy/(README\.gz|copyright|changelog\.Debian\.gz|examples/events/(README|[a-z_]+\.json))' \
    >"$tmp/stray"
if [ -s "$tmp/stray" ]; then fail "unexpected files: $(tr '\n' ' ' <"$tmp/stray")"
else ok "no unexpected files ($(wc -l <"$tmp/files") files)"; fi

# --- 3. control data ------------------------------------------------------
check "conffiles is /etc/whyops.conf" \
    sh -c '[ "$(dpkg-deb -I "$1" conffiles)" = /etc/whyops.conf ]' sh "$deb"
depends=$(dpkg-deb -f "$deb" Depends)
missing=""
for d in adduser libc6 libmicrohttpd libcurl3-gnutls libjansson libhiredis \
    libgnutls30 libinih; do
	case ", $depends" in *", $d"*) ;; *) missing="$missing $d" ;; esac
done
if [ -z "$missing" ]; then ok "Depends: $depends"
else fail "Depends lacks$missing: $depends"; fi
dpkg-deb -I "$deb" postinst >"$tmp/postinst"
check "postinst creates user and group whyops" \
    grep -q "adduser --system --quiet --ingroup whyops" "$tmp/postinst"
check "postinst gives the conffile to group whyops" \
    grep -q "chown root:whyops" "$tmp/postinst"
check "postinst enables and starts the unit (dh_installsystemd)" \
    sh -c 'grep -q "deb-systemd-helper.*whyops-proxy.service" "$1" &&
        grep -q "deb-systemd-invoke.*whyops-proxy.service" "$1"' sh "$tmp/postinst"
check "postrm purges /var/lib/whyops" \
    sh -c 'dpkg-deb -I "$1" postrm | grep -q "rm -rf /var/lib/whyops"' sh "$deb"

# --- 4. the packaged binary and configuration -----------------------------
root="$tmp/root"
dpkg-deb -x "$deb" "$root"
bin="$root/usr/sbin/whyops-proxy"
check "whyops-proxy -V prints ${version%-*}" \
    sh -c '[ "$("$1" -V)" = "whyops-proxy $2" ]' sh "$bin" "${version%-*}"
check "shared libraries resolve" sh -c '! ldd "$1" | grep "not found"' sh "$bin"
check "hardened binary (PIE, BIND_NOW, RELRO, stack protector)" sh -c '
    readelf -h "$1" | grep -q "Type:.*DYN" &&
    readelf -d "$1" | grep -q "FLAGS.*BIND_NOW" &&
    readelf -l "$1" | grep -q GNU_RELRO &&
    readelf -s --wide "$1" | grep -q __stack_chk_fail' sh "$bin"

# As shipped: at most the missing state directory, which systemd creates.
"$bin" -t -c "$root/etc/whyops.conf" >"$tmp/t.out" 2>"$tmp/t.err"
rc=$?
errors=$(grep -v ': warning: ' "$tmp/t.err")
if [ $rc -eq 0 ] && grep -qx "configuration OK" "$tmp/t.out"; then
	ok "packaged whyops.conf: configuration OK"
elif [ ! -d /var/lib/whyops ] && [ "$(echo "$errors" | wc -l)" -eq 1 ] &&
    echo "$errors" | grep -q "\[events\] [a-z_]* /var/lib/whyops/[a-z.]* cannot be created"; then
	ok "packaged whyops.conf: valid but for /var/lib/whyops (absent here)"
else
	fail "packaged whyops.conf -t (exit $rc)"; sed 's/^/     /' "$tmp/t.err"
fi

# With the state directory's files in a temporary directory it must pass.
mkdir "$tmp/var"
sed -e "s|^; file = /var/lib/whyops/events.jsonl\$|file = $tmp/var/events.jsonl|" \
    -e "s|^spool_dir = /var/lib/whyops/spool\$|spool_dir = $tmp/var/spool|" \
    "$root/etc/whyops.conf" >"$tmp/whyops.conf"
if ! grep -q "^file = $tmp/var/events.jsonl\$" "$tmp/whyops.conf" ||
    ! grep -q "^spool_dir = $tmp/var/spool\$" "$tmp/whyops.conf"; then
	fail "the packaged whyops.conf has no \"; file = /var/lib/whyops/events.jsonl\" or \"spool_dir = /var/lib/whyops/spool\" line"
else
	check "packaged whyops.conf, state in a temporary directory: -t OK" \
	    sh -c '"$1" -t -c "$2" 2>&1 | grep -qx "configuration OK"' \
	    sh "$bin" "$tmp/whyops.conf"
fi

# And it serves: the packaged binary with the packaged configuration (state
# in the temporary directory, a free port) answers /healthz, /readyz and
# /metrics, and a SIGTERM ends it with status 0.  Redis need not run: the
# events spool meanwhile.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed "s|^listen = .*|listen = 127.0.0.1:$port|" "$tmp/whyops.conf" >"$tmp/serve.conf"
"$bin" -c "$tmp/serve.conf" >"$tmp/serve.log" 2>&1 &
spid=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/healthz" || [ $i -ge 50 ]; do
	sleep 0.1; i=$((i + 1))
done
check "packaged binary and configuration: GET /healthz is 200" \
    sh -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$1/healthz")" = 200 ]' sh "$port"
check "packaged binary and configuration: GET /metrics is Prometheus text" \
    sh -c 'curl -s "http://127.0.0.1:$1/metrics" | grep -q "^whyops_build_info"' sh "$port"
check "packaged binary and configuration: a request without a key is 401" \
    sh -c '[ "$(curl -s -o /dev/null -w "%{http_code}" -d "{}" "http://127.0.0.1:$1/v1/chat/completions")" = 401 ]' sh "$port"
kill -TERM $spid 2>/dev/null
if wait $spid; then ok "packaged binary: SIGTERM, exit 0"
else fail "packaged binary: exit $? after SIGTERM"; sed 's/^/     /' "$tmp/serve.log"; fi

# --- 5. the unit ------------------------------------------------------------
unit="$root/lib/systemd/system/whyops-proxy.service"
for kv in Type=notify User=whyops Group=whyops StateDirectory=whyops \
    "ExecStartPre=/usr/sbin/whyops-proxy -t -c /etc/whyops.conf" \
    "ExecStart=/usr/sbin/whyops-proxy -c /etc/whyops.conf" \
    'ExecReload=/bin/kill -HUP $MAINPID' LimitNOFILE=65536 \
    ProtectSystem=strict CapabilityBoundingSet= NoNewPrivileges=yes \
    SystemCallFilter=@system-service WantedBy=multi-user.target; do
	if grep -qxF -- "$kv" "$unit"; then ok "unit: $kv"
	else fail "unit: no line \"$kv\""; fi
done
if command -v systemd-analyze >/dev/null 2>&1; then
	score=$(systemd-analyze security --offline=true "$unit" 2>&1 |
	    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		ok "systemd-analyze security: exposure $score (at most 2.0)"
	else
		fail "systemd-analyze security: exposure ${score:-unknown} (want at most 2.0)"
	fi
else
	echo "skip systemd-analyze security (no systemd-analyze)"
fi

# --- 6. lintian -------------------------------------------------------------
if command -v lintian >/dev/null 2>&1; then
	lintian -I --fail-on error,warning "$changes" >"$tmp/lintian" 2>&1
	rc=$?
	grep -v "running with root privileges" "$tmp/lintian" | sed 's/^/     /'
	if [ $rc -eq 0 ]; then ok "lintian: no error or warning"
	else fail "lintian (exit $rc)"; fi
else
	fail "lintian is not installed (apt-get install lintian)"
fi

# --- --install: the maintainer scripts for real ----------------------------
if [ $install -eq 1 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		fail "--install needs root"
	elif dpkg-query -W whyops-proxy >/dev/null 2>&1; then
		fail "--install: whyops-proxy is already installed here; not touching it"
	else
		had_user=0
		getent passwd whyops >/dev/null && had_user=1
		check "dpkg -i" dpkg -i "$deb"
		check "user and group whyops" sh -c \
		    'getent passwd whyops | grep -q ":/var/lib/whyops:/usr/sbin/nologin$" &&
		     id -gn whyops | grep -qx whyops'
		check "/etc/whyops.conf root:whyops 0640" sh -c \
		    '[ "$(stat -c "%U:%G %a" /etc/whyops.conf)" = "root:whyops 640" ]'
		check "/var/lib/whyops whyops:whyops 0750" sh -c \
		    '[ "$(stat -c "%U:%G %a" /var/lib/whyops)" = "whyops:whyops 750" ]'
		check "whyops-proxy -t as user whyops" sh -c \
		    'setpriv --reuid=whyops --regid=whyops --init-groups \
		        /usr/sbin/whyops-proxy -t -c /etc/whyops.conf 2>&1 |
		     grep -qx "configuration OK"'
		check "dpkg --purge" dpkg --purge whyops-proxy
		check "purge removed /etc/whyops.conf and /var/lib/whyops" \
		    sh -c '[ ! -e /etc/whyops.conf ] && [ ! -e /var/lib/whyops ]'
		# purge leaves the system user, as Debian does; the test does not
		if [ $had_user -eq 0 ]; then
			userdel whyops 2>/dev/null
			groupdel whyops 2>/dev/null
		fi
	fi
fi

finish
