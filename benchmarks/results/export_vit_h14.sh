#!/usr/bin/env bash
# The ViT-H-14 export benchmark (fp32): peak RSS from /usr/bin/time -v; RSS sampled every 5 s.
cd /tmp/vith
nice -n 10 /usr/bin/time -v /work/wt/families/.venv/bin/cliprt export random:openclip-ViT-H-14 /tmp/vith/vith14 --force --precision fp32 > export4.log 2>&1 &
TPID=$!
sleep 3
PID=$(pgrep -P "$TPID" | head -1)
while kill -0 "$PID" 2>/dev/null; do
  echo "$(date +%T) $(ps -o rss= -p "$PID")" >> rss4.log
  sleep 5
done
