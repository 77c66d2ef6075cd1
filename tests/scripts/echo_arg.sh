#!/bin/sh
# A CLI agent that answers with its first argument, plus its environment and directory.
printf 'arg: %s | greeting: %s | cwd: %s\n' "$1" "$GREETING" "$(pwd)"
