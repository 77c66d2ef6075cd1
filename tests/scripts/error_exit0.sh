#!/bin/sh
# A CLI agent that prints an error but exits 0, as some do when not logged in.
echo "Error: You are not logged in, please log in with q login"
exit 0
