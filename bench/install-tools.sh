#!/bin/sh
# Install wrk and nginx for `make bench` when they are missing and apt-get can (as root).
# Quiet, and never fatal: without them, their rows of the table say "skipped".
# RUNLEVEL=1 keeps the nginx package from starting its system service on port 80.
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
PATH="$PATH:/usr/sbin:/sbin"

install() {
    apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null 2>&1
}

[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || exit 0
command -v wrk >/dev/null || install wrk || echo "bench: could not install wrk; requests per second rows are skipped"
command -v nginx >/dev/null || install nginx-light || install nginx \
    || echo "bench: could not install nginx; nginx rows are skipped"
exit 0
