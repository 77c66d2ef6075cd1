#!/bin/sh
# A CLI agent that answers with the prompt it read on stdin.
printf 'got: '
cat
