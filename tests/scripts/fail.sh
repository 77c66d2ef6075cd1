#!/bin/sh
# A CLI agent that fails with a non-zero exit status.
echo "partial output"
echo "boom: model crashed" >&2
exit 3
