#!/usr/bin/env bash
# The tools the test command needs beyond cargo: mdBook (builds the book under docs/)
# and cargo-deny (licenses, bans and sources of every dependency). Installed from
# crates.io into ~/.cargo/bin the first time, at the versions below; later runs find
# them there.
set -euo pipefail

install() {
  local tool=$1 crate=$2 version=$3
  if command -v "$tool" >/dev/null 2>&1 && "$tool" --version 2>/dev/null | grep -q "$version"; then
    return
  fi
  echo "tools: installing $crate $version (once; a few minutes)" >&2
  cargo install --locked --quiet "$crate" --version "$version"
}

install mdbook mdbook "${MDBOOK_VERSION:-0.5.4}"
install cargo-deny cargo-deny "${CARGO_DENY_VERSION:-0.20.2}"

# promtool checks and unit-tests the Prometheus alert rules in deploy/monitoring, and
# the telemetry test starts a private Prometheus server: both come with Debian's
# prometheus package (its system service is not used).
if ! command -v promtool >/dev/null 2>&1; then
  echo "tools: installing Debian's prometheus package for promtool (once)" >&2
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
