#!/usr/bin/env bash
# The demo: a fresh instance, the host, the embedded MQTT broker and a simulated floor, on SQLite.
# Needs only Python 3.11+: sets up .venv (scripts/setup.sh, without test deps or services), then
# runs `floorhost demo` with this script's arguments (`scripts/demo.sh --help` for its options).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

fh_setup_venv
exec .venv/bin/floorhost demo "$@"
