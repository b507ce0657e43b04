#!/bin/sh
# bench/run.sh: see bench/run.py (this only runs it) and bench/README.md.
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
