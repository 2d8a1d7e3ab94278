#!/bin/sh
# Debian packages the demo and the browser tests use. Installs only what is missing, and only
# where apt-get exists and we are root; elsewhere it says what to install by hand.
need=""
[ -d /usr/share/datasets/fashion-mnist ] || need="$need dataset-fashion-mnist"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -z "$need" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Installing Debian packages:$need"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) >/tmp/cbmkit-apt.log 2>&1 \
        || { echo "apt-get failed (see /tmp/cbmkit-apt.log); continuing without:$need"; exit 0; }
else
    echo "Optional Debian packages missing:$need (install them with apt for the demo data and browser tests)."
fi
