#!/bin/sh
# memcg-capture.sh - record what memcg-emu imports: the memory-cgroup activity of a
# cgroup v2 subtree, as cgroupfs samples and as a kprobe/tracepoint trace.
#
# usage: memcg-capture.sh [options] CGROUP [-- COMMAND [ARGS...]]
#   CGROUP      the subtree root (absolute, or relative to the cgroup2 mount)
#   -d SECONDS  stop after SECONDS (default 10; 0: when COMMAND exits, or on a signal)
#   -i MS       sampling period in ms (default 20)
#   -r MS       look for new cgroups and pids every MS ms (default 1000)
#   -o DIR      output directory (default ./memcg-capture.PID)
#   -b KB       trace ring buffer per CPU in KiB (default 8192)
#   -T          samples only (no tracefs needed)
#   -S          trace only
#   -f          keep only memcg events of the subtree's memcgs (busy machines)
#   -x FILE     more kprobe definitions, one per line (p:memcgemu/NAME SYMBOL ARGS)
#   -K          keep the raw sample stream (samples.raw)
# COMMAND runs after tracing is set up, in the caller's cgroup (it must move itself into
# the subtree); the capture stops 0.5 s after it exits.
#
# Writes: samples.csv (one row per sample and cgroup: memory.current, every memory.stat
# key, memory.events, memory.pressure, and the limits memory.max/high/low), trace.txt
# (trace_pipe text), memcg_map.txt (memcg pointer -> cgroup), pids.csv, probes.txt,
# meta.txt.  Then: memcg-emu import samples DIR/samples.csv -o samples.npz
#                  memcg-emu import trace DIR/trace.txt -o trace.npz
#
# Needs root, cgroup v2, tracefs for the trace, a POSIX sh (dash, busybox ash, bash) and
# head, find, awk, cat, ls.  The kprobes live in their own group (memcgemu) and are enabled
# only in a private trace instance; on exit (also on INT/TERM/HUP) both are removed, and
# leftovers of a run killed with SIGKILL are removed at the next start.

set -u
G=memcgemu
DURATION=10 PERIOD_MS=20 RESCAN_MS=1000 OUT= BUF_KB=8192
TRACE_ON=1 SAMPLE_ON=1 FILTER_ON=0 EXTRA= KEEP_RAW=0

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit "${1:-2}"; }
fail() { echo "memcg-capture: $*" >&2; exit 1; }

while getopts d:i:r:o:b:TSfx:Kh o; do
	case $o in
	d) DURATION=$OPTARG ;; i) PERIOD_MS=$OPTARG ;; r) RESCAN_MS=$OPTARG ;;
	o) OUT=$OPTARG ;; b) BUF_KB=$OPTARG ;; T) TRACE_ON=0 ;; S) SAMPLE_ON=0 ;;
	f) FILTER_ON=1 ;; x) EXTRA=$OPTARG ;; K) KEEP_RAW=1 ;; h) usage 0 ;; *) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
SUBTREE=$1
shift
[ "${1:-}" = -- ] && shift
for v in "$DURATION" "$PERIOD_MS" "$RESCAN_MS" "$BUF_KB"; do
	case $v in '' | *[!0-9]*) fail "not a whole number: $v" ;; esac
done
[ "$PERIOD_MS" -gt 0 ] && [ "$RESCAN_MS" -gt 0 ] || fail "-i and -r must be positive"
[ "$(id -u)" = 0 ] || fail "run as root"

MNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$MNT" ] || fail "cgroup v2 is not mounted"
case $SUBTREE in /*) ROOT=${SUBTREE%/} ;; *) ROOT=$MNT/${SUBTREE%/} ;; esac
[ -e "$ROOT/cgroup.procs" ] || fail "$ROOT is not a cgroup v2 directory"
[ -n "$OUT" ] || OUT=./memcg-capture.$$
mkdir -p "$OUT" || fail "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
META=$OUT/meta.txt RAW=$OUT/samples.raw PIDS=$OUT/pids.csv TRACE=$OUT/trace.txt
PROBES=$OUT/probes.txt

# ---- time: microseconds, no fork where the shell has $EPOCHREALTIME -----------------------
if [ -n "${EPOCHREALTIME:-}" ]; then
	CLOCK=epoch_realtime
	clock_us() { _t=$EPOCHREALTIME; NOW=${_t%.*}${_t#*.}; }
else
	CLOCK=uptime
	clock_us() { read -r _t _x < /proc/uptime; NOW=${_t%.*}${_t#*.}0000; }
fi
# sleeping: "read -t" on a private fifo (a builtin, no fork) when the shell supports
# fractional timeouts, else sleep(1)
FIFO=$OUT/.fifo.$$
rm -f "$FIFO"
mkfifo "$FIFO" || fail "mkfifo $FIFO failed"
exec 3<>"$FIFO"
rm -f "$FIFO"
read -t 0.001 _x <&3 2>/dev/null
case $? in 1 | 1[3-9][0-9] | 2[0-9][0-9]) NAP=read ;; *) NAP=sleep ;; esac
nap_us() {
	[ "$1" -gt 0 ] || return 0
	_frac=$(($1 % 1000000 + 1000000))
	_secs=$(($1 / 1000000)).${_frac#1}
	if [ $NAP = read ]; then read -t "$_secs" _x <&3; else sleep "$_secs"; fi
	return 0
}

# ---- tracefs ------------------------------------------------------------------------------
TFS= INST= READER= PROBED= ON= DONE=0 QUIT=0 CMD=

tracefs_dir() {
	for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
		[ -e "$d/kprobe_events" ] && { TFS=$d; return 0; }
	done
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null &&
		[ -e /sys/kernel/tracing/kprobe_events ] && TFS=/sys/kernel/tracing
}

# The probes memcg-emu's trace importer reads ($argN: kernel >= 4.20).  A line whose
# function this kernel lacks is reported as FAIL in probes.txt and skipped.
probe_list() {
	cat <<EOF
p:$G/try_charge try_charge_memcg memcg=\$arg1:x64 gfp=\$arg2:x32 nr_pages=\$arg3:u32
r:$G/try_charge_ret try_charge_memcg ret=\$retval:s32
p:$G/pc_charge page_counter_try_charge counter=\$arg1:x64 nr_pages=\$arg2:u64
r:$G/pc_charge_ret page_counter_try_charge ok=\$retval:u8
p:$G/pc_uncharge page_counter_uncharge counter=\$arg1:x64 nr_pages=\$arg2:u64
p:$G/refill_stock refill_stock memcg=\$arg1:x64 nr_pages=\$arg2:u32
p:$G/uncharge_batch uncharge_batch memcg=+0(\$arg1):x64 nr_memory=+8(\$arg1):u64 pgpgout=+16(\$arg1):u64 nr_kmem=+24(\$arg1):u64
p:$G/account_kmem memcg_account_kmem memcg=\$arg1:x64 nr_pages=\$arg2:s32
p:$G/reclaim try_to_free_mem_cgroup_pages memcg=\$arg1:x64 nr_pages=\$arg2:u64 gfp=\$arg3:x32 opts=\$arg4:u32
r:$G/reclaim_ret try_to_free_mem_cgroup_pages reclaimed=\$retval:u64
p:$G/reclaim_high reclaim_high memcg=\$arg1:x64 nr_pages=\$arg2:u32 gfp=\$arg3:x32
p:$G/memcg_oom mem_cgroup_out_of_memory memcg=\$arg1:x64 gfp=\$arg2:x32 order=\$arg3:s32
r:$G/memcg_oom_ret mem_cgroup_out_of_memory killed=\$retval:u8
p:$G/css_online mem_cgroup_css_online memcg=\$arg1:x64
p:$G/css_offline mem_cgroup_css_offline memcg=\$arg1:x64
p:$G/css_free mem_cgroup_css_free memcg=\$arg1:x64
p:$G/map_read memory_current_read memcg=\$arg1:x64
EOF
}
TRACEPOINTS="vmscan/mm_vmscan_memcg_reclaim_begin vmscan/mm_vmscan_memcg_reclaim_end
oom/mark_victim oom/oom_score_adj_update sched/sched_process_fork sched/sched_process_exec
sched/sched_process_exit cgroup/cgroup_mkdir cgroup/cgroup_rmdir cgroup/cgroup_attach_task"
MEMCG_EVENTS="try_charge refill_stock uncharge_batch account_kmem reclaim reclaim_high memcg_oom"

remove_probe() { echo "-:$1" >> "$TFS/kprobe_events" 2>/dev/null; }

trace_start() {
	tracefs_dir || fail "no tracefs (mount -t tracefs nodev /sys/kernel/tracing), or use -T"
	for n in $(awk -v g="$G" '{ split($1, a, ":"); if (index(a[2], g "/") == 1) print a[2] }' \
		"$TFS/kprobe_events"); do
		remove_probe "$n"   # left over by a run that was SIGKILLed
	done
	INST=$TFS/instances/$G.$$
	mkdir "$INST" || fail "cannot create the trace instance $INST"
	echo 0 > "$INST/tracing_on"
	echo "$BUF_KB" > "$INST/buffer_size_kb" 2>/dev/null
	# CLOCK_BOOTTIME = /proc/uptime, the uptime_s column of samples.csv
	for c in boot mono; do
		grep -qw $c "$INST/trace_clock" && { echo $c > "$INST/trace_clock"; break; }
	done
	: > "$PROBES"
	{ probe_list; [ -n "$EXTRA" ] && grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$EXTRA"; } \
		> "$OUT/.probes.$$"
	while IFS= read -r def; do
		name=${def%% *} name=${name#*/}
		fn=${def#* } fn=${fn%% *}
		if echo "$def" >> "$TFS/kprobe_events" 2>/dev/null; then
			PROBED="$PROBED $name"
			echo "ok   $def" >> "$PROBES"
		else
			why=$(tail -n 3 "$TFS/error_log" 2>/dev/null | head -n 1)
			grep -qw "$fn" /proc/kallsyms 2>/dev/null || why="$fn not in /proc/kallsyms; $why"
			echo "FAIL $def   # $why" >> "$PROBES"
		fi
	done < "$OUT/.probes.$$"
	rm -f "$OUT/.probes.$$"
	ev=$INST/events/$G
	[ -d "$ev/map_read" ] && echo "common_pid == $$" > "$ev/map_read/filter"
	# return probes: failures only (no line before the task's next event = success)
	[ -d "$ev/try_charge_ret" ] && echo "ret != 0" > "$ev/try_charge_ret/filter"
	[ -d "$ev/pc_charge_ret" ] && echo "ok == 0" > "$ev/pc_charge_ret/filter"
	for n in $PROBED; do echo 1 > "$ev/$n/enable" && ON="$ON $G/$n"; done
	[ -d "$INST/events/sched/sched_process_fork" ] &&
		echo "common_pid != $$" > "$INST/events/sched/sched_process_fork/filter"
	for tp in $TRACEPOINTS; do
		if [ -d "$INST/events/$tp" ] && echo 1 > "$INST/events/$tp/enable"; then
			ON="$ON $tp"
			echo "ok   tracepoint $tp" >> "$PROBES"
		else
			echo "FAIL tracepoint $tp" >> "$PROBES"
		fi
	done
	cat "$INST/trace_pipe" > "$TRACE" &
	READER=$!
	echo 1 > "$INST/tracing_on"
}

mark() { [ -n "$INST" ] && echo "$*" > "$INST/trace_marker"; }

trace_stop() {
	[ -n "$INST" ] || return 0
	for e in $ON; do echo 0 > "$INST/events/$e/enable" 2>/dev/null; done
	echo 0 > "$INST/tracing_on" 2>/dev/null
	_n=0
	while [ $_n -lt 40 ]; do   # up to 2 s for the reader to drain the buffer
		_left=$(cat "$INST"/per_cpu/cpu*/stats 2>/dev/null |
			awk '$1 == "entries:" { s += $2 } END { print s + 0 }')
		[ "$_left" = 0 ] && break
		nap_us 50000
		_n=$((_n + 1))
	done
	nap_us 100000
	{
		echo "trace_clock=$(sed -e 's/.*\[\(.*\)\].*/\1/' "$INST/trace_clock")"
		for c in "$INST"/per_cpu/cpu*; do
			echo "trace_stats.${c##*/}=$(tr -s ' \n' ' ' < "$c/stats")"
		done
	} >> "$META"
	[ -n "$READER" ] && kill "$READER" 2>/dev/null && wait "$READER" 2>/dev/null
	READER=
}

# removes the trace instance and every kprobe this run defined; runs once, on any exit
teardown() {
	[ $DONE = 1 ] && return 0
	DONE=1
	if [ -n "$INST" ]; then
		for e in $ON; do echo 0 > "$INST/events/$e/enable" 2>/dev/null; done
		[ -n "$READER" ] && kill "$READER" 2>/dev/null && wait "$READER" 2>/dev/null
		rmdir "$INST" 2>/dev/null || echo "memcg-capture: could not remove $INST" >&2
		for n in $PROBED; do
			remove_probe "$G/$n" || echo "memcg-capture: could not remove kprobe $G/$n" >&2
		done
		INST=
	fi
	exec 3>&-
}
trap teardown EXIT
trap 'QUIT=1' INT TERM HUP

# ---- the subtree --------------------------------------------------------------------------
DIRS= FILES= KNOWN=" "
relpath() { REL=${1#"$MNT"}; REL=${REL#/}; [ -n "$REL" ] || REL=/; }

scan() {
	DIRS= FILES=
	for d in $(find "$ROOT" -type d 2>/dev/null); do
		[ -e "$d/memory.current" ] || continue
		DIRS="$DIRS $d"
		FILES="$FILES $d/memory.current $d/memory.stat $d/memory.events"
		for f in memory.pressure memory.swap.current memory.max memory.high memory.low; do
			[ -e "$d/$f" ] && FILES="$FILES $d/$f"
		done
	done
	clock_us
	for d in $DIRS; do
		relpath "$d"
		while read -r p; do
			c=?
			read -r c 2>/dev/null < "/proc/$p/comm"
			echo "$NOW,$REL,$p,$c" >> "$PIDS"
		done < "$d/cgroup.procs"
	done
	[ -n "$INST" ] || return 0
	_added=0
	for d in $DIRS; do
		case $KNOWN in *" $d "*) continue ;; esac
		relpath "$d"
		# this marker, then our own read of memory.current: its map_read event carries the
		# memcg pointer of the cgroup
		mark "memcg_map path=$REL ino=$(ls -di "$d" | awk '{ print $1 }')"
		read -r _x < "$d/memory.current"
		KNOWN="$KNOWN$d "
		_added=1
	done
	[ $FILTER_ON = 1 ] && [ $_added = 1 ] && narrow_filter
}

narrow_filter() {
	nap_us 50000
	_expr=$(awk '/tracing_mark_write: memcg_map / { w = 1; next }
		w && / map_read: / { for (i = 1; i <= NF; i++) if ($i ~ /^memcg=/) print substr($i, 7); w = 0 }' \
		"$TRACE" | sort -u | awk '{ printf "%s%s", (n++ ? " || " : ""), "memcg == " $1 }')
	[ -n "$_expr" ] || return 0
	for n in $MEMCG_EVENTS; do
		[ -d "$INST/events/$G/$n" ] && echo "$_expr" > "$INST/events/$G/$n/filter"
	done
}

# ---- meta ---------------------------------------------------------------------------------
{
	echo "capture.version=1"
	echo "capture.tool=memcg-capture.sh (memcg-emu)"
	echo "uname=$(uname -srvm)"
	echo "cgroup_root=$ROOT"
	echo "cgroup_mount=$MNT"
	echo "duration_s=$DURATION"
	echo "interval_ms=$PERIOD_MS"
	echo "rescan_ms=$RESCAN_MS"
	echo "clock=$CLOCK"
	echo "sleep=$NAP"
	echo "page_size=$(getconf PAGESIZE 2>/dev/null || echo 4096)"
	echo "nr_cpus=$(grep -c '^processor' /proc/cpuinfo)"
	echo "mem_total_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
	echo "swap_total_kib=$(awk '/^SwapTotal:/ { print $2 }' /proc/meminfo)"
	echo "thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
	echo "cgroup_mount_options=$(awk '$3 == "cgroup2" { print $4; exit }' /proc/mounts)"
	read -r _u _x < /proc/uptime
	clock_us
	echo "start.uptime_s=$_u"
	echo "start.clock_us=$NOW"
} > "$META"
echo "t_us,cgroup,pid,comm" > "$PIDS"

[ $TRACE_ON = 1 ] && trace_start
scan
if [ $# -gt 0 ]; then
	"$@" &
	CMD=$!
	echo "command=$*" >> "$META"
	echo "command_pid=$CMD" >> "$META"
fi

# ---- sampling loop ------------------------------------------------------------------------
[ $SAMPLE_ON = 1 ] && exec 4>"$RAW"
clock_us
T_END=$((NOW + DURATION * 1000000)) T_NEXT=$NOW T_SCAN=$((NOW + RESCAN_MS * 1000))
STEP=$((PERIOD_MS * 1000)) SEQ=0 CMD_END=0
while [ $QUIT = 0 ]; do
	clock_us
	[ "$DURATION" -gt 0 ] && [ "$NOW" -ge $T_END ] && break
	if [ -n "$CMD" ] && [ $CMD_END = 0 ] && ! kill -0 "$CMD" 2>/dev/null; then
		CMD_END=$((NOW + 500000))
	fi
	[ $CMD_END != 0 ] && [ "$NOW" -ge $CMD_END ] && break
	if [ $SAMPLE_ON = 1 ]; then
		SEQ=$((SEQ + 1))
		mark "memcg_sample seq=$SEQ"
		read -r _u _x < /proc/uptime
		echo "@ $SEQ $NOW $_u" >&4
		[ -n "$FILES" ] && head -n 100000 $FILES >&4 2>/dev/null
		clock_us
		echo "@@ $SEQ $NOW" >&4
	fi
	if [ "$NOW" -ge $T_SCAN ]; then
		scan
		T_SCAN=$((T_SCAN + RESCAN_MS * 1000))
		[ $T_SCAN -lt "$NOW" ] && T_SCAN=$((NOW + RESCAN_MS * 1000))
	fi
	T_NEXT=$((T_NEXT + STEP))
	[ "$NOW" -gt $T_NEXT ] && T_NEXT=$NOW
	nap_us $((T_NEXT - NOW))
done
if [ -n "$CMD" ]; then
	if kill -0 "$CMD" 2>/dev/null; then
		echo "command_still_running_at_stop=1" >> "$META"
	else
		wait "$CMD"
		echo "command_rc=$?" >> "$META"
	fi
fi
[ $SAMPLE_ON = 1 ] && exec 4>&-
{
	read -r _u _x < /proc/uptime
	clock_us
	echo "end.uptime_s=$_u"
	echo "end.clock_us=$NOW"
	echo "samples=$SEQ"
} >> "$META"
trace_stop
teardown

# ---- samples.raw -> samples.csv -----------------------------------------------------------
# raw: "@ SEQ T_US UPTIME", head's "==> FILE <==" blocks, "@@ SEQ T_END_US"
if [ $SAMPLE_ON = 1 ]; then
	awk -v mnt="$MNT" -f - "$RAW" > "$OUT/samples.csv" <<'AWK'
function emit(   i, k, c, row) {
	for (i = 1; i <= ncg; i++) {
		c = order[i]
		if (!nkeys) {
			if (!((c, "keys") in V)) continue
			nkeys = split(V[c, "keys"], KEY, " ")
			row = "seq,t_us,t_end_us,uptime_s,cgroup,current,swap_current"
			for (k = 1; k <= nkeys; k++) row = row "," KEY[k]
			row = row ",ev_low,ev_high,ev_max,ev_oom,ev_oom_kill,ev_oom_group_kill"
			row = row ",psi_some_avg10,psi_some_avg60,psi_some_total_us"
			row = row ",psi_full_avg10,psi_full_avg60,psi_full_total_us,max,high,low"
			print row
		}
		row = seq "," t0 "," t1 "," up "," c "," V[c, "cur"] "," V[c, "swap"]
		for (k = 1; k <= nkeys; k++) row = row "," V[c, "s." KEY[k]]
		split("low high max oom oom_kill oom_group_kill", EK, " ")
		for (k = 1; k <= 6; k++) row = row "," V[c, "e." EK[k]]
		split("some_avg10 some_avg60 some_total full_avg10 full_avg60 full_total", PK, " ")
		for (k = 1; k <= 6; k++) row = row "," V[c, "p." PK[k]]
		row = row "," V[c, "max"] "," V[c, "high"] "," V[c, "low"]
		print row
	}
	split("", V); split("", seen); ncg = 0
}
$1 == "@" { seq = $2; t0 = $3; up = $4; next }
$1 == "@@" { t1 = $3; emit(); next }
$1 == "==>" {
	file = $2; sub(/.*\//, "", file)
	c = $2; sub(/\/[^\/]*$/, "", c); c = substr(c, length(mnt) + 2)
	if (c == "") c = "/"
	if (!(c in seen)) { seen[c] = 1; order[++ncg] = c }
	next
}
NF == 0 { next }
file == "memory.current" { V[c, "cur"] = $1; next }
file == "memory.swap.current" { V[c, "swap"] = $1; next }
file == "memory.max" || file == "memory.high" || file == "memory.low" {
	V[c, substr(file, 8)] = $1; next
}
file == "memory.stat" { V[c, "s." $1] = $2; V[c, "keys"] = V[c, "keys"] " " $1; next }
file == "memory.events" { V[c, "e." $1] = $2; next }
file == "memory.pressure" {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); V[c, "p." $1 "_" kv[1]] = kv[2] }
	next
}
AWK
	[ $KEEP_RAW = 1 ] || rm -f "$RAW"
fi

# ---- trace.txt -> memcg_map.txt (pointer -> cgroup) ---------------------------------------
if [ $TRACE_ON = 1 ] && [ -f "$TRACE" ]; then
	awk '
	function pid(s) { sub(/^.*-/, "", s); return s }
	function stamp(   s) { s = $0; sub(/:.*/, "", s); sub(/.* /, "", s); return s }
	function field(name,   i) {
		for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2)
		return ""
	}
	/tracing_mark_write: memcg_map / { p = pid($1); path[p] = field("path"); ino[p] = field("ino"); next }
	/ map_read: / {
		p = pid($1)
		if (p in path) {
			print "memcg=" field("memcg") " ino=" ino[p] " path=" path[p] " source=read t=" stamp()
			delete path[p]
		}
		next
	}
	/ css_online: / { online[pid($1)] = field("memcg"); next }
	/ cgroup_mkdir: / {
		p = pid($1)
		if (p in online) {
			pa = field("path"); sub(/^\//, "", pa)
			print "memcg=" online[p] " ino=" field("id") " path=" pa " source=mkdir t=" stamp()
			delete online[p]
		}
		next
	}' "$TRACE" > "$OUT/memcg_map.txt"
fi
echo "memcg-capture: wrote $OUT ($SEQ samples)" >&2
