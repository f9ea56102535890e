#!/bin/sh
# build-deb.sh [-q] OUTDIR - builds the Debian packages of this tree.
#
# The tree is copied as git sees it (tracked and new files, not what
# .gitignore excludes: build directories, the binary, node_modules) into a
# temporary directory, dpkg-buildpackage -b -us -uc runs there, and the
# .deb, .ddeb, .changes and .buildinfo files land in OUTDIR; the copy is
# removed.  Nothing is written to the source tree.
#
# DEB_BUILD_OPTIONS and DEB_BUILD_PROFILES pass through: nocheck skips the
# tests, and implies the nocheck profile (the tests' Build-Depends are not
# needed); parallel=N defaults to the CPU count.  -q: the build log goes to OUTDIR/build.log, its tail is shown on
# failure.  Without a git checkout the whole tree is copied minus the
# usual build outputs.
set -eu

quiet=0
if [ "${1:-}" = -q ]; then quiet=1; shift; fi
[ $# -eq 1 ] || { echo "usage: $0 [-q] OUTDIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
upstream=${version%-*}
work=$(mktemp -d "${TMPDIR:-/tmp}/whyops-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
src="$work/whyops-proxy-$upstream"
mkdir "$src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked files deleted in the work tree are left out
	git -C "$top" ls-files -z -c -o --exclude-standard |
	    (cd "$top" && perl -0 -ne 'chomp; print "$_\0" if -e || -l') |
	    tar -C "$top" --null --no-recursion -T - -cf - | tar -C "$src" -xf -
else
	tar -C "$top" --exclude=./build --exclude=./build-asan \
	    --exclude=./build-tsan --exclude=./whyops-proxy \
	    --exclude=node_modules --exclude=__pycache__ --exclude=.git \
	    -cf - . | tar -C "$src" -xf -
fi

case " ${DEB_BUILD_OPTIONS:-} " in
*" parallel="*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc)" ;;
esac
# nocheck: the test-only Build-Depends (<!nocheck>) are not needed either
case " $DEB_BUILD_OPTIONS " in
*" nocheck "*)
	case " ${DEB_BUILD_PROFILES:-} " in
	*" nocheck "*) ;;
	*) DEB_BUILD_PROFILES="${DEB_BUILD_PROFILES:-} nocheck" ;;
	esac
	export DEB_BUILD_PROFILES ;;
esac
export DEB_BUILD_OPTIONS

cd "$src"
if [ $quiet -eq 1 ]; then
	if ! dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1; then
		tail -40 "$out/build.log" >&2
		echo "build-deb.sh: dpkg-buildpackage failed; log: $out/build.log" >&2
		exit 1
	fi
else
	dpkg-buildpackage -b -us -uc
fi
cd "$work"
for f in *.deb *.ddeb *.changes *.buildinfo; do
	[ -e "$f" ] && cp "$f" "$out/"
done
ls "$out"/*.deb "$out"/*.changes
