#!/bin/sh
# Installs the Debian packages whyops-proxy needs to build, run and test.
# As root it runs apt-get itself (one `apt-get update`, then `install -y`);
# otherwise it prints the command to run.  Called by `make check`/`make run`.
set -eu

PKGS="build-essential pkg-config libmicrohttpd-dev libcurl4-gnutls-dev
libjansson-dev libhiredis-dev libgnutls28-dev libinih-dev check
python3 curl redis-server nginx-light gnutls-bin mandoc wrk
debhelper lintian dpkg-dev systemd"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# Node.js (>= 20) and npm for the SDK tests (test/sdk).  NodeSource's nodejs
# bundles npm and conflicts with Debian's npm: ask for Debian's only when missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "whyops-proxy needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
