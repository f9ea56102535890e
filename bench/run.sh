#!/bin/sh
# bench/run.sh - whyops-proxy against nginx (plain reverse proxy) and against
# no proxy at all, same mock upstream, same requests, one run.  See
# bench/README.md for what is measured and how to read the table.
#
#   sh bench/run.sh            (or: make bench)
#
# Environment (defaults in brackets):
#   BENCH_DURATION   seconds per measured run [8]
#   BENCH_WARMUP     seconds of warm-up before each measured run [1]
#   BENCH_CONNS      connection counts [64 1]
#   BENCH_WORKLOADS  chat and/or stream [chat stream]
#   BENCH_TARGETS    direct, nginx and/or whyops [direct nginx whyops]
#   BENCH_SERVER_CPU CPU of the server under test [0]
#   BENCH_CLIENT_CPU CPU of wrk and the mock upstream [1]
#   BENCH_OUT        where the table is saved [bench/results/latest.md]
#   WHYOPS_BIN       proxy binary [./whyops-proxy]
#   WHYOPS_MOCK      mock upstream binary [build/mock-upstream]
#   NGINX            nginx binary [nginx from PATH; skipped if none]
#
# stdout: the markdown table (also saved to BENCH_OUT); stderr: progress.
# Raw wrk output, logs and the generated configurations of the last run are
# kept in bench/results/raw/.
# Exit status: 0; 1 if any request failed (non-200, bad body, socket error)
# or a server died; 2 if the benchmark could not be set up.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
DATA=$HERE/data

DURATION=${BENCH_DURATION:-8}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-64 1}
WORKLOADS=${BENCH_WORKLOADS:-chat stream}
TARGETS=${BENCH_TARGETS:-direct nginx whyops}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
OUT=${BENCH_OUT:-$HERE/results/latest.md}
RAW=$HERE/results/raw
PROXY=${WHYOPS_BIN:-$ROOT/whyops-proxy}
MOCK=${WHYOPS_MOCK:-$ROOT/build/mock-upstream}
NGINX=${NGINX:-$(command -v nginx 2>/dev/null || ls /usr/sbin/nginx 2>/dev/null || true)}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 2; }
note() { printf -- '- %s\n' "$*" >> "$TMP/notes"; say "bench: note: $*"; }

# ---- checks -------------------------------------------------------------

for t in wrk curl taskset awk sed od; do
	command -v $t >/dev/null 2>&1 || die "$t is not installed"
done
[ -x "$PROXY" ] || die "$PROXY not built (make whyops-proxy)"
[ -x "$MOCK" ] || die "$MOCK not built (make build/mock-upstream)"
case $DURATION$WARMUP in *[!0-9]*) die "BENCH_DURATION/BENCH_WARMUP: whole seconds";; esac
[ "$DURATION" -ge 1 ] || die "BENCH_DURATION must be at least 1"
for w in $WORKLOADS; do
	case $w in chat|stream) ;; *) die "BENCH_WORKLOADS: unknown workload $w (chat, stream)";; esac
done
for t in $TARGETS; do
	case $t in direct|nginx|whyops) ;; *) die "BENCH_TARGETS: unknown target $t (direct, nginx, whyops)";; esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/whyops-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"
: > "$TMP/notes"
: > "$TMP/results"
MPID= WPID= NPID=

cleanup() {
	for p in $WPID $NPID $MPID; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $WPID $NPID $MPID; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$NCPU" -le "$SCPU" ] || [ "$NCPU" -le "$CCPU" ] || [ "$SCPU" = "$CCPU" ]; then
	note "only $NCPU CPU(s): server, wrk and mock are not pinned apart; figures are not comparable with a pinned run"
	PIN_S= PIN_C=
else
	PIN_S="taskset -c $SCPU" PIN_C="taskset -c $CCPU"
fi
HZ=$(getconf CLK_TCK)

# ---- /proc helpers ------------------------------------------------------

# Sum of utime+stime (clock ticks) of the given processes, all threads.
cpu_ticks() {
	for p in "$@"; do
		cat "/proc/$p/stat"
	done 2>/dev/null | awk '{ sub(/^.*\) /, ""); split($0, f, " ");
	    t += f[12] + f[13] } END { print t + 0 }'
}

# "VmRSS VmHWM" in KiB, summed over the given processes.
mem_kb() {
	for p in "$@"; do
		cat "/proc/$p/status"
	done 2>/dev/null | awk '/^VmRSS:/ { r += $2 } /^VmHWM:/ { h += $2 }
	    END { print r + 0, h + 0 }'
}

# "busy total" jiffies of one CPU.
cpu_busy() {
	awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i;
	    print t - $5 - $6, t; f = 1 } END { if (!f) print 0, 0 }' /proc/stat
}

# The TCP port a process listens on (from its socket inodes).
listen_port() {
	inodes=$(ls -l "/proc/$1/fd" 2>/dev/null |
	    sed -n 's/.*socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
	[ -n "$inodes" ] || return 1
	hex=$(awk -v ino=" $inodes " '$4 == "0A" && index(ino, " " $10 " ") {
	    split($2, a, ":"); print a[2]; exit }' /proc/net/tcp /proc/net/tcp6 2>/dev/null)
	[ -n "$hex" ] || return 1
	printf '%d\n' "0x$hex"
}

# A port nobody uses, below the usual ephemeral range.
free_port() {
	used=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp \
	    /proc/net/tcp6 2>/dev/null)
	while :; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((20000 + r % 12000))
		h=$(printf '%04X' "$p")
		printf '%s\n' "$used" | grep -qx "$h" || { echo "$p"; return; }
	done
}

# Wait until a URL answers at all (any HTTP status), up to ~5 s.
wait_http() {
	i=0
	while [ $i -lt 50 ]; do
		c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")
		[ "$c" != "000" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Running (a crashed child of this shell stays a zombie until waited for).
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
	    ! sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^[ZX]'
}

# ---- quiet machine? -----------------------------------------------------

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
q0=$(awk '/^cpu[0-9]/ { t = 0; for (i = 2; i <= 9; i++) t += $i;
    print $1, t - $5 - $6, t }' /proc/stat)
sleep 2
q1=$(awk '/^cpu[0-9]/ { t = 0; for (i = 2; i <= 9; i++) t += $i;
    print $1, t - $5 - $6, t }' /proc/stat)
BUSY=$(printf '%s\n%s\n' "$q0" "$q1" | awk '{ if ($1 in b) {
    d = $3 - t[$1]; if (d <= 0) d = 1
    printf "%s%s %.0f%%", sep, $1, 100 * ($2 - b[$1]) / d; sep = ", " }
    else { b[$1] = $2; t[$1] = $3 } }')
say "bench: CPU busy before start: $BUSY"
printf '%s\n' "$BUSY" | tr -d ',%' | awk '{ for (i = 2; i <= NF; i += 2) if ($i + 0 > 15) x = 1 }
    END { exit !x }' &&
	note "machine not quiet before the run (CPU busy over 2 s: $BUSY): other load skews every figure"

# ---- the mock upstream --------------------------------------------------

rm -rf "$RAW"
mkdir -p "$RAW" "$(dirname "$OUT")" || die "cannot create $RAW"

$PIN_C "$MOCK" -d "$DATA" > "$TMP/mock.port" 2> "$RAW/mock.log" &
MPID=$!
i=0
while [ ! -s "$TMP/mock.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
MPORT=$(head -n 1 "$TMP/mock.port")
[ -n "$MPORT" ] && alive "$MPID" || die "the mock upstream did not start: $(cat "$RAW/mock.log")"
say "bench: mock upstream pid $MPID port $MPORT (CPU $CCPU)"

# ---- whyops-proxy -------------------------------------------------------

"$PROXY" --new-key > "$TMP/key" || die "$PROXY --new-key failed"
KEY=$(head -n 1 "$TMP/key")
SHA=$(sed -n 's/^sha256 = //p' "$TMP/key")
[ -n "$KEY" ] && [ -n "$SHA" ] || die "cannot parse the output of --new-key"
sed -e "s/@MOCK_PORT@/$MPORT/g" -e "s/@KEY_SHA256@/$SHA/g" \
    "$HERE/whyops.conf.in" > "$TMP/whyops.conf"
cp "$TMP/whyops.conf" "$RAW/whyops.conf"
WPORT=
case " $TARGETS " in *" whyops "*)
	$PIN_S "$PROXY" -c "$TMP/whyops.conf" 2> "$RAW/whyops.log" &
	WPID=$!
	i=0
	while [ -z "$WPORT" ] && [ $i -lt 50 ] && alive "$WPID"; do
		WPORT=$(listen_port "$WPID") || WPORT=
		[ -n "$WPORT" ] || sleep 0.1
		i=$((i + 1))
	done
	[ -n "$WPORT" ] && wait_http "http://127.0.0.1:$WPORT/healthz" ||
		die "whyops-proxy did not start: $(cat "$RAW/whyops.log")"
	WLOG0=$(wc -l < "$RAW/whyops.log")
	say "bench: whyops-proxy pid $WPID port $WPORT (CPU $SCPU)"
esac

# ---- nginx --------------------------------------------------------------

NPORT=
case " $TARGETS " in *" nginx "*)
	if [ -z "$NGINX" ] || [ ! -x "$NGINX" ]; then
		note "nginx is not installed: the nginx reference is skipped (apt-get install nginx-light)"
	else
		mkdir -p "$TMP/nginx-tmp"
		tries=0
		while [ -z "$NPORT" ] && [ $tries -lt 5 ]; do
			tries=$((tries + 1))
			p=$(free_port)
			sed -e "s|@DIR@|$TMP|g" -e "s/@PORT@/$p/g" \
			    -e "s/@MOCK_PORT@/$MPORT/g" "$HERE/nginx.conf.in" \
			    > "$TMP/nginx.conf"
			: > "$TMP/nginx-error.log"
			$PIN_S "$NGINX" -p "$TMP" -c "$TMP/nginx.conf" \
			    -e "$TMP/nginx-error.log" 2>> "$TMP/nginx-error.log" &
			NPID=$!
			if wait_http "http://127.0.0.1:$p/" && alive "$NPID"; then
				NPORT=$p
			else
				kill "$NPID" 2>/dev/null
				wait "$NPID" 2>/dev/null
				NPID=
			fi
		done
		cp "$TMP/nginx.conf" "$RAW/nginx.conf"
		if [ -z "$NPORT" ]; then
			note "nginx did not start (see bench/results/raw/nginx-error.log): the nginx reference is skipped"
			cp "$TMP/nginx-error.log" "$RAW/nginx-error.log"
		else
			NWORKERS0=$(ps -o pid= --ppid "$NPID" | tr -d ' ' | sort | tr '\n' ' ')
			say "bench: nginx master $NPID workers $NWORKERS0 port $NPORT (CPU $SCPU)"
		fi
	fi
esac

# PIDs whose CPU and memory are the server's; empty for direct.
server_pids() {
	case $1 in
	whyops) echo "$WPID" ;;
	nginx) echo "$NPID" $(ps -o pid= --ppid "$NPID" 2>/dev/null) ;;
	*) echo "" ;;
	esac
}

target_port() {
	case $1 in
	direct) echo "$MPORT" ;;
	nginx) echo "$NPORT" ;;
	whyops) echo "$WPORT" ;;
	esac
}

workload_files() {	# -> "request-file answer-file scenario"
	case $1 in
	chat) echo "$DATA/request.json $DATA/chat-answer.json chat" ;;
	stream) echo "$DATA/request-stream.json $DATA/chat-stream.sse chat-stream" ;;
	*) die "unknown workload $1 (chat, stream)" ;;
	esac
}

# ---- preflight: every target answers every workload correctly -----------

for wl in $WORKLOADS; do
	set -- $(workload_files "$wl")
	for tg in $TARGETS; do
		port=$(target_port "$tg")
		[ -n "$port" ] || continue
		code=$(curl -s -o "$TMP/pre.out" -w '%{http_code}' --max-time 5 \
		    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		    --data-binary "@$1" "http://127.0.0.1:$port/v1/chat/completions?mock=$3")
		# whyops-proxy marks answers with its invisible trace signature
		# (part of the capture work measured here): its answer must equal
		# the upstream's once the zero-width characters (U+200B..U+200E)
		# are taken out, and an injected chunk that held only them is
		# dropped.  Its runs then expect the marked length, which is the
		# same for every call (trace ids are fixed-length UUIDv7).
		if [ "$tg" = whyops ]; then
			python3 -c 'import re, sys
b = re.sub(rb"\xe2\x80[\x8b-\x8e]", b"", open(sys.argv[1], "rb").read())
b = b"".join(e for e in re.split(rb"(?<=\n\n)", b)
    if b"\"delta\":{\"content\":\"\"},\"finish_reason\":null}]}" not in e)
sys.stdout.buffer.write(b)' "$TMP/pre.out" > "$TMP/pre.clean"
			wc -c < "$TMP/pre.out" | tr -d ' ' > "$TMP/expect-$wl"
			cmpfile=$TMP/pre.clean
		else
			cmpfile=$TMP/pre.out
		fi
		if [ "$code" != 200 ] || ! cmp -s "$cmpfile" "$2"; then
			note "preflight: $tg/$wl answered $code with a body that differs from $(basename "$2") ($(wc -c < "$TMP/pre.out") bytes): $(head -c 200 "$TMP/pre.out" | tr '\n|' '  ')"
		fi
	done
done

# ---- the runs -------------------------------------------------------------

HWM_RESET=1
nruns=0
for wl in $WORKLOADS; do for c in $CONNS; do for tg in $TARGETS; do
	port=$(target_port "$tg")
	[ -n "$port" ] && nruns=$((nruns + 1))
done; done; done
say "bench: $nruns runs of ${WARMUP}+${DURATION} s: about $((nruns * (DURATION + WARMUP + 1))) s"

run=0
for wl in $WORKLOADS; do
	set -- $(workload_files "$wl")
	body=$1 expect=$(wc -c < "$2" | tr -d ' ') scn=$3
	for c in $CONNS; do
		for tg in $TARGETS; do
			port=$(target_port "$tg")
			[ -n "$port" ] || continue
			run=$((run + 1))
			expect=$(wc -c < "$2" | tr -d ' ')
			[ "$tg" = whyops ] && [ -s "$TMP/expect-$wl" ] && expect=$(cat "$TMP/expect-$wl")
			say "bench: [$run/$nruns] $wl c=$c $tg"
			name=$wl-c$c-$tg
			url="http://127.0.0.1:$port/v1/chat/completions?mock=$scn"
			pids=$(server_pids "$tg")
			dead=
			for p in $pids $MPID; do
				alive "$p" || dead=1
			done
			if [ -n "$dead" ]; then
				printf '%s\t%s\t%s\tDEAD\n' "$wl" "$c" "$tg" >> "$TMP/results"
				continue
			fi
			if [ "$WARMUP" -gt 0 ]; then
				$PIN_C wrk -t1 -c"$c" -d"${WARMUP}s" --timeout 5s \
				    -s "$HERE/bench.lua" "$url" -- "$body" "$expect" "$KEY" \
				    > "$RAW/$name.warmup.txt" 2>&1
			fi
			pids=$(server_pids "$tg")
			for p in $pids; do
				echo 5 2>/dev/null > "/proc/$p/clear_refs" || HWM_RESET=
			done
			t0=$(cpu_ticks $pids)
			b0=$(cpu_busy "$CCPU")
			w0=$(date +%s%N)
			$PIN_C wrk -t1 -c"$c" -d"${DURATION}s" --timeout 5s \
			    -s "$HERE/bench.lua" "$url" -- "$body" "$expect" "$KEY" \
			    > "$RAW/$name.txt" 2>&1
			w1=$(date +%s%N)
			b1=$(cpu_busy "$CCPU")
			t1=$(cpu_ticks $pids)
			mem=$(mem_kb $pids)
			alive_after=1
			for p in $pids; do
				alive "$p" || alive_after=0
			done
			line=$(grep '^BENCH ' "$RAW/$name.txt" | head -n 1)
			sample=$(sed -n 's/^BENCH_SAMPLE //p' "$RAW/$name.txt" | head -n 1)
			[ -n "$line" ] || line="requests=0 wrkfailed=1"
			# workload conns target k=v... then the sample last
			printf '%s\t%s\t%s\t%s ticks=%s hz=%s wall_ns=%s mem=%s,%s cbusy=%s,%s pids=%s alive=%s\t%s\n' \
			    "$wl" "$c" "$tg" "$line" "$((t1 - t0))" "$HZ" \
			    "$((w1 - w0))" ${mem% *} ${mem#* } \
			    "$(( ${b1% *} - ${b0% *} ))" "$(( ${b1#* } - ${b0#* } ))" \
			    "$(echo $pids | wc -w)" "$alive_after" "$sample" >> "$TMP/results"
		done
	done
done

# ---- after the runs -----------------------------------------------------

[ -n "$HWM_RESET" ] ||
	note "could not reset VmHWM (/proc/PID/clear_refs): peak RSS is since server start, not per run"
if [ -n "$WPID" ]; then
	if alive "$WPID"; then
		extra=$(($(wc -l < "$RAW/whyops.log") - WLOG0))
		[ "$extra" -eq 0 ] ||
			note "whyops-proxy logged $extra line(s) at warn/error during the runs, first: $(sed -n "$((WLOG0 + 1))p" "$RAW/whyops.log")"
	else
		wait "$WPID"
		note "**whyops-proxy DIED** during the benchmark (exit status $?), see bench/results/raw/whyops.log"
		WPID=
	fi
fi
if [ -n "$NPID" ]; then
	w=$(ps -o pid= --ppid "$NPID" | tr -d ' ' | sort | tr '\n' ' ')
	[ "$w" = "$NWORKERS0" ] ||
		note "nginx workers changed during the run ($NWORKERS0-> $w): a worker died"
	cp "$TMP/nginx-error.log" "$RAW/nginx-error.log"
	grep -q . "$TMP/nginx-error.log" &&
		note "nginx error log not empty, first line: $(head -n 1 "$TMP/nginx-error.log")"
fi
alive "$MPID" || note "**the mock upstream DIED** during the benchmark"

# ---- the table ------------------------------------------------------------

{
	echo "# whyops-proxy benchmark"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $NCPU CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1))."
	nv="nginx not run"
	[ -n "$NPORT" ] && nv=$("$NGINX" -v 2>&1 | sed 's|^.*version: *||')
	echo "whyops-proxy $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?'),"\
	    "$nv, $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)."
	echo "wrk -t1, ${DURATION} s per run after ${WARMUP} s of warm-up;"\
	    "server on CPU $SCPU, wrk + mock upstream on CPU $CCPU;"\
	    "at start: load average $LOAD0, CPU busy $BUSY."
	echo "Request ~$(wc -c < "$DATA/request.json" | tr -d ' ') B JSON; answers:"\
	    "chat $(wc -c < "$DATA/chat-answer.json" | tr -d ' ') B JSON,"\
	    "stream $(wc -c < "$DATA/chat-stream.sse" | tr -d ' ') B SSE in $(grep -c '^data: ' "$DATA/chat-stream.sse") events (one send each, chunked)."
	echo
} > "$TMP/table"

awk -F '\t' '
function kv(s, k,   n, i, a, b) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) {
		split(a[i], b, "=")
		if (b[1] == k) return b[2]
	}
	return ""
}
function ms(us) { return us == "" || nolat ? "-" : sprintf("%.3f", us / 1000) }
function ratio(a, b) { return (a == "" || b == "" || a + 0 == 0 || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b) }
{
	key = $1 SUBSEP $2 SUBSEP $3
	order[++n] = key
	wl[n] = $1; cn[n] = $2; tg[n] = $3
	if ($4 == "DEAD") { dead[key] = 1; next }
	s = $4
	req[key] = kv(s, "requests") + 0
	dur = kv(s, "duration_us") + 0
	rps[key] = dur > 0 ? req[key] * 1e6 / dur : 0
	p50[key] = kv(s, "p50_us"); p90[key] = kv(s, "p90_us"); p99[key] = kv(s, "p99_us")
	np = kv(s, "pids") + 0
	if (kv(s, "alive") != "1") np = 0	# its /proc figures are gone
	ticks = kv(s, "ticks"); hz = kv(s, "hz"); wall = kv(s, "wall_ns")
	split(kv(s, "mem"), m, ","); split(kv(s, "cbusy"), cb, ",")
	if (np > 0 && req[key] > 0) cpu[key] = ticks / hz * 1e6 / req[key]
	if (np > 0 && wall > 0) cpct[key] = sprintf("%.0f%%", 100 * ticks / hz / (wall / 1e9))
	if (np > 0) { rss[key] = m[1]; hwm[key] = m[2] }
	ccpct[key] = cb[2] > 0 ? sprintf("%.0f%%", 100 * cb[1] / cb[2]) : "-"
	sock = kv(s, "connect") + kv(s, "read") + kv(s, "write") + kv(s, "timeout")
	non = kv(s, "non200") + 0; bad = kv(s, "badbody") + 0
	e = ""
	if (non) e = e non " non-200, "
	if (bad) e = e bad " bad body, "
	if (sock) e = e sock " socket errors (c" kv(s, "connect") " r" kv(s, "read") " w" kv(s, "write") " t" kv(s, "timeout") "), "
	if (req[key] == 0) e = e "no requests completed, "
	if (kv(s, "wrkfailed") != "") e = e "wrk failed, "
	if (kv(s, "pids") + 0 > 0 && kv(s, "alive") != "1") e = e "server died, "
	err[key] = e == "" ? "0" : "**!! " substr(e, 1, length(e) - 2) "**"
	if (e != "") { bad_any = 1; if ($5 != "") samples = samples "- " $1 " c=" $2 " " $3 ": first bad answer: " $5 "\n" }
}
END {
	print "| workload | conns | target | req/s | p50 ms | p90 ms | p99 ms | server CPU us/req | server CPU | client CPU | server RSS end / peak MiB | errors | req/s vs nginx | CPU/req vs nginx | peak RSS vs nginx | req/s vs direct |"
	print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
	for (i = 1; i <= n; i++) {
		k = order[i]
		kn = wl[i] SUBSEP cn[i] SUBSEP "nginx"
		kd = wl[i] SUBSEP cn[i] SUBSEP "direct"
		if (dead[k]) {
			printf "| %s | %s | %s | - | - | - | - | - | - | - | - | **!! not run: server or mock dead** | - | - | - | - |\n", wl[i], cn[i], tg[i]
			bad_any = 1
			continue
		}
		vn_r = vn_c = vn_m = vd = "-"
		if (tg[i] == "whyops" && (kn in req) && !dead[kn]) {
			vn_r = ratio(rps[k], rps[kn])
			if ((k in cpu) && (kn in cpu)) vn_c = ratio(cpu[k], cpu[kn])
			if ((k in hwm) && (kn in hwm)) vn_m = ratio(hwm[k], hwm[kn])
		}
		if (tg[i] != "direct" && (kd in req) && !dead[kd]) vd = ratio(rps[k], rps[kd])
		nolat = req[k] == 0
		printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		    wl[i], cn[i], tg[i], rps[k], ms(p50[k]), ms(p90[k]), ms(p99[k]),
		    (k in cpu) ? sprintf("%.1f", cpu[k]) : "-",
		    (k in cpct) ? cpct[k] : "-", ccpct[k],
		    (k in rss) ? sprintf("%.1f / %.1f", rss[k] / 1024, hwm[k] / 1024) : "-",
		    err[k], vn_r, vn_c, vn_m, vd
	}
	if (samples != "") { print ""; print "First bad answer of each failing run:"; print ""; printf "%s", samples }
	exit bad_any ? 1 : 0
}' "$TMP/results" >> "$TMP/table"
status=$?

if [ -s "$TMP/notes" ]; then
	{ echo; echo "Notes:"; echo; cat "$TMP/notes"; } >> "$TMP/table"
	grep -q -e DIED -e preflight "$TMP/notes" && status=1
fi
cp "$TMP/table" "$OUT"
[ -n "${BENCH_OUT:-}" ] || cp "$TMP/table" "$HERE/results/$(date -u +%Y%m%d-%H%M%S).md"
cat "$TMP/table"
say "bench: saved to $OUT (raw output in $RAW)"
exit $status
