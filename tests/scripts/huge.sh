#!/bin/sh
# A CLI agent that never stops printing.
yes "spam spam spam"
