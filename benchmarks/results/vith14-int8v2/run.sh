#!/usr/bin/env bash
# int8 v2 (the merged default) of a full-depth random:openclip-ViT-H-14: per-stage peaks.
cd /tmp/vith5
nice -n 10 /usr/bin/time -v /work/main/.venv/bin/python /work/main/benchmarks/export_memory.py \
  random:openclip-ViT-H-14 /tmp/vith5/vith14 --precision int8 --interval 1 > export.out 2> export.log &
TPID=$!
sleep 2
PID=$(pgrep -P "$TPID" | head -1)
while kill -0 "$PID" 2>/dev/null; do
  RSS=$(ps -o rss= -p "$PID")
  echo "$(date +%T) $RSS" >> rss.log
  if [ -n "$RSS" ] && [ "$RSS" -gt 13000000 ]; then echo "$(date +%T) over 13 GB: killing $PID" >> rss.log; kill "$PID"; fi
  sleep 3
done
wait $TPID
echo "exit $?" >> rss.log
