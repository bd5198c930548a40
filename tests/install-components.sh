#!/bin/sh
# Install the real components some tests drive (nginx, headless Chromium) when they are
# missing and apt-get can (as root). Never fatal: without one, its tests are skipped and
# pytest's summary prints why (see tests/components.py).
# RUNLEVEL=1 keeps the nginx package from starting its system service on port 80.
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
PATH="$PATH:/usr/sbin:/sbin"

install() {
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
    apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-components: not root with apt-get; nginx and chromium tests run only if installed"
    exit 0
fi
command -v nginx >/dev/null || install nginx-light || install nginx \
    || echo "install-components: could not install nginx; its tests are skipped"
command -v chromium >/dev/null || install chromium \
    || echo "install-components: could not install chromium; browser tests are skipped"
exit 0
