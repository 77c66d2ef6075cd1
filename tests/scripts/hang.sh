#!/bin/sh
# A CLI agent that starts a grandchild, records both PIDs in $PIDFILE, then hangs.
sleep 300 &
echo "$$ $!" > "$PIDFILE.tmp"
mv "$PIDFILE.tmp" "$PIDFILE"
wait
