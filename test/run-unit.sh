#!/bin/sh
# Runs each Check unit-test binary given on the command line; fails if any fails.
status=0
for t in "$@"; do
	echo "== $t"
	"$t" || status=1
done
exit $status
