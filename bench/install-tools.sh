#!/bin/sh
# Install wrk and nginx for `make bench` when they are missing and apt-get can (as root), and
# thumbor into bench/.thumbor. Quiet, and never fatal: without them, their rows say "skipped".
# RUNLEVEL=1 keeps the nginx package from starting its system service on port 80.
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
PATH="$PATH:/usr/sbin:/sbin"

install() {
    apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null 2>&1
}

# thumbor, for the render comparison, in a virtualenv of its own (its pins are not ours).
THUMBOR_VENV=bench/.thumbor
if [ ! -x "$THUMBOR_VENV/bin/thumbor" ]; then
    { python3 -m venv "$THUMBOR_VENV" && "$THUMBOR_VENV/bin/python" -m pip install --quiet "thumbor==7.8.0"; } \
        >/dev/null 2>&1 || { rm -rf "$THUMBOR_VENV"; echo "bench: could not install thumbor; its rows are skipped"; }
fi

[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || exit 0
command -v wrk >/dev/null || install wrk || echo "bench: could not install wrk; requests per second rows are skipped"
command -v nginx >/dev/null || install nginx-light || install nginx \
    || echo "bench: could not install nginx; nginx rows are skipped"
exit 0
