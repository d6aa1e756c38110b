#!/usr/bin/env bash
# The whole test suite, twice:
#   pass 1  SQLite      + the embedded MQTT broker
#   pass 2  PostgreSQL  + Mosquitto (the tests start their own mosquitto processes on free ports)
# Sets up .venv (with the test extra), Chromium, the Mosquitto binary and PostgreSQL first (scripts/setup.sh).
#
#   scripts/test.sh [pytest args...]        the arguments go to both passes
#   FLOORHOST_TEST_ONLY=sqlite|postgresql   run one pass only (for developers)
#   FLOORHOST_TEST_PASS_TIMEOUT=SECONDS     stop a pass that runs longer (default 1800)
#
# Exits 0 only if every pass ran tests and passed. The last line is the combined count:
#   total: N passed, N failed[, N skipped]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

only="${FLOORHOST_TEST_ONLY:-}"
case "$only" in
    "" | sqlite | postgresql) ;;
    *) fh_die "FLOORHOST_TEST_ONLY must be sqlite or postgresql, not '$only'" ;;
esac
pass_timeout="${FLOORHOST_TEST_PASS_TIMEOUT:-1800}"

setup_start=$SECONDS
fh_setup_venv test
fh_ensure_chromium
fh_ensure_pdftoppm
if [[ "$only" != sqlite ]]; then
    fh_ensure_mosquitto
    fh_ensure_postgres
fi
fh_log "setup took $((SECONDS - setup_start)) s"

logdir="$(mktemp -d -t floorhost-test.XXXXXX)"
trap 'rm -rf "$logdir"' EXIT

total_passed=0 total_failed=0 total_skipped=0 overall=0
reports=()

# Counts from pytest's closing summary line ("3 failed, 120 passed, 2 skipped, 1 warning in 9.87s").
# Errors count as failed, xpassed as passed, xfailed as skipped. Sets p_passed p_failed p_skipped p_found.
parse_summary() {
    local log="$1" line n word
    p_passed=0 p_failed=0 p_skipped=0 p_found=0
    line="$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" \
        | grep -E '(passed|failed|errors?|skipped|xfailed|xpassed|deselected|no tests ran).* in [0-9.]+s' \
        | tail -n 1 || true)"
    [[ -n "$line" ]] || return 0
    p_found=1
    while read -r n word; do
        case "$word" in
            passed | xpassed) p_passed=$((p_passed + n)) ;;
            failed | error | errors) p_failed=$((p_failed + n)) ;;
            skipped | xfailed) p_skipped=$((p_skipped + n)) ;;
        esac
    done < <(grep -oE '[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed)' <<<"$line")
}

# run_pass NUMBER TITLE DB BROKER [extra pytest options...] -- [user args...]
run_pass() {
    local number="$1" title="$2" db="$3" broker="$4"
    shift 4
    local opts=()
    while [[ $# -gt 0 && "$1" != -- ]]; do opts+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    local log="$logdir/pass$number.log" rc=0 start=$SECONDS elapsed verdict
    local runner=(timeout -k 30 "$pass_timeout")
    [[ -t 0 ]] && runner=(timeout --foreground -k 30 "$pass_timeout")

    printf '\n==================== Pass %s: %s ====================\n' "$number" "$title"
    printf 'FLOORHOST_TEST_DB=%s FLOORHOST_TEST_BROKER=%s\n\n' "$db" "$broker"
    set +e
    FLOORHOST_TEST_DB="$db" FLOORHOST_TEST_BROKER="$broker" \
        "${runner[@]}" .venv/bin/pytest -q "${opts[@]}" "$@" 2>&1 | tee "$log"
    rc="${PIPESTATUS[0]}"
    set -e
    elapsed=$((SECONDS - start))

    parse_summary "$log"
    verdict="ok"
    if [[ "$rc" == 5 ]]; then
        verdict="FAILED: pytest collected no tests (exit 5)"
    elif [[ "$rc" == 124 || "$rc" == 137 ]]; then
        verdict="FAILED: stopped after ${pass_timeout} s (FLOORHOST_TEST_PASS_TIMEOUT)"
    elif [[ "$rc" != 0 ]]; then
        verdict="FAILED: pytest exit $rc"
    elif [[ "$p_found" != 1 ]]; then
        verdict="FAILED: no pytest summary line found"
        rc=1
    elif [[ "$p_passed" == 0 ]]; then
        verdict="FAILED: no test passed (all skipped or deselected)"
        rc=1
    fi
    # A pass that failed without counting a failure still counts as one, so the total never reads clean.
    if [[ "$rc" != 0 && "$p_failed" == 0 ]]; then p_failed=1; fi
    [[ "$rc" == 0 ]] || overall=1

    total_passed=$((total_passed + p_passed))
    total_failed=$((total_failed + p_failed))
    total_skipped=$((total_skipped + p_skipped))
    reports+=("pass $number ($title): $p_passed passed, $p_failed failed, $p_skipped skipped in ${elapsed} s — $verdict")
}

if [[ "$only" != postgresql ]]; then
    run_pass 1 "SQLite + embedded broker" sqlite embedded -p no:cacheprovider -- "$@"
fi
if [[ "$only" != sqlite ]]; then
    run_pass 2 "PostgreSQL + Mosquitto" "${FH_PG_URL}" mosquitto -- "$@"
fi

printf '\n==================== Summary ====================\n'
for r in "${reports[@]}"; do printf '%s\n' "$r"; done
if [[ "$overall" == 0 ]]; then printf 'result: OK\n'; else printf 'result: FAILED\n'; fi
skipped_part=""
[[ "$total_skipped" -gt 0 ]] && skipped_part=", $total_skipped skipped"
printf 'total: %s passed, %s failed%s\n' "$total_passed" "$total_failed" "$skipped_part"
exit "$overall"
