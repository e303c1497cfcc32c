#!/bin/bash
# usage: [SERVE_ARGS=...] [RSSLOG=file] bench.sh LOADGEN-ARGS...   (one fresh collector per run)
idle() { ok=0; while [ $ok -lt 3 ]; do
  read -r _ u n s i w q sq st _ < /proc/stat; t1=$((u+n+s+i+w+q+sq+st)); i1=$((i+w)); sleep 1
  read -r _ u n s i w q sq st _ < /proc/stat; t2=$((u+n+s+i+w+q+sq+st)); i2=$((i+w))
  [ $((100*(i2-i1)/(t2-t1))) -ge 90 ] && ok=$((ok+1)) || ok=0; done; }
sync; sleep 3    # the last run's writeback must not land in this one
DIR=$(mktemp -d)
${RC:-target/release/rollout-collector} serve --data-dir $DIR --export-endpoint http://127.0.0.1:24317 $SERVE_ARGS &
PID=$!; sleep 1; idle
# RSS every 10 s, for the long runs
[ -n "$RSSLOG" ] && { ( while kill -0 $PID 2>/dev/null; do
  awk '/VmRSS/{printf "%d ", $2/1024}' /proc/$PID/status; sleep 10; done; echo ) > $RSSLOG & }
cpu() { awk '{print $14+$15, $14}' /proc/$PID/stat; }   # collector CPU and its user part, in ticks
read -r c0 u0 < <(cpu); b0=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
target/release/examples/loadgen "$@" --json | tail -1
read -r c1 u1 < <(cpu); b1=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
echo "collector CPU s: $(( c1-c0 ))e-2 user $(( u1-u0 ))e-2  machine busy ticks: $(( b1-b0 ))"
grep -E 'VmHWM|VmRSS' /proc/$PID/status
curl -s 127.0.0.1:4318/api/status; echo     # sessions in memory and evicted, export counters
kill -INT $PID; wait $PID
# Data directories are kept until all runs are done (see "ext4" below), then removed.
mkdir -p /tmp/bench/old && mv $DIR /tmp/bench/old/
