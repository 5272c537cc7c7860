#!/usr/bin/env bash
# The story of patchctl's waves and bake, on the local lab (called by `make demo`):
# scan, the catalog under the lab demo policy, approval by time and by hand, a rollout, the pilot
# wave, a refused early promotion, the promotion at a simulated time after the bake, the fleet
# wave, and the report. The clock is simulated with --now; nothing edits the store. It ends by
# saying how to explore what it left: the export lines that open its store with its policy and the
# lab's inventory, commands to try, and the HTML report it wrote ($PATCHCTL_HOME/demo-report.html).
#
# Environment: PATCHCTL (the patchctl command, default .venv/bin/patchctl), DEMO_HOSTS (6),
# DEMO_SUBNET (the lab's loopback range, default the lab's 127.77),
# PATCHCTL_HOME (the lab and the demo's store live there). The demo uses its own store,
# $PATCHCTL_HOME/demo.db, recreated on every run, and puts the lab hosts back to pristine first.
set -euo pipefail
cd "$(dirname "$0")/.."

PATCHCTL=${PATCHCTL:-.venv/bin/patchctl}
HOSTS=${DEMO_HOSTS:-6}
# patchctl's own default (patchctl/paths.py), made absolute: the export lines at the end must work
# from any directory
HOME_DIR=${PATCHCTL_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/patchctl}
mkdir -p "$HOME_DIR"
HOME_DIR=$(cd "$HOME_DIR" && pwd)
export PATCHCTL_HOME="$HOME_DIR"
rm -f "$HOME_DIR/demo.db" "$HOME_DIR/demo.db-wal" "$HOME_DIR/demo.db-shm"
export PATCHCTL_DB="sqlite:///$HOME_DIR/demo.db"
export PATCHCTL_POLICY="$PWD/policies/lab-demo.yml"
unset PATCHCTL_NOW

at() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
step() { printf '\n\033[1m== %s\033[0m\n$ patchctl %s\n' "$1" "${*:2}"; }
run() { step "$@"; "$PATCHCTL" "${@:2}"; }
# A command that reports host states: exit 1 (not every host compliant) is part of the story.
states() {
  step "$@"
  local rc=0
  "$PATCHCTL" "${@:2}" || rc=$?
  if [ "$rc" -gt 1 ]; then echo "demo: expected exit 0 or 1, got $rc" >&2; exit 1; fi
}
# A command that must be refused by the policy (exit 3): anything else fails the demo.
refused() {
  step "$@"
  local rc=0
  "$PATCHCTL" "${@:2}" || rc=$?
  if [ "$rc" -ne 3 ]; then echo "demo: expected exit 3 (blocked by policy), got $rc" >&2; exit 1; fi
  echo "(exit 3: blocked by policy)"
}

"$PATCHCTL" lab up --hosts "$HOSTS" ${DEMO_SUBNET:+--subnet "$DEMO_SUBNET"}
"$PATCHCTL" lab reset >/dev/null

run "1. Scan the fleet" scan

# A Berlin wall-clock time on a day relative to today, in UTC: the lab servers' maintenance
# window lab-nightly (policies/lab-demo.yml) is open 01:00-05:00 Europe/Berlin.
night() { date -u -d "TZ=\"Europe/Berlin\" $(date -d "$1" +%F) $2" +%Y-%m-%dT%H:%M:%SZ; }
T1=$(night '+4 days' 02:00)   # the updates are 4 days old: the policy approves them; lab-nightly is open
T2=$(night '+6 days' 12:00)   # 2 days into the pilot's 7-day bake
T3=$(night '+12 days' 12:00)  # the bake is over; midday: lab-nightly is closed
T4=$(night '+13 days' 02:00)  # the next night: lab-nightly is open again

run "2. The catalog today: the policy approves updates 3 days after first seen" updates
run "   An operator approves the security fix at once" approve patchctl-demo-ssl --reason "security fix: no need to wait"
run "3. Four days later ($T1): approved, except the rejected and the major ones" --now "$T1" updates
run "4. Freeze the approved updates into a rollout" --now "$T1" rollout create
run "   The maintenance windows at $T1: lab-nightly is open, the servers use it" --now "$T1" windows
run "5. Deploy the pilot wave (the inventory group 'pilot'): the server reboots in its window, the client stays reboot pending" --now "$T1" deploy
run "   Status: the pilot bakes for 7 days" --now "$T1" rollout status
refused "6. Promote too early ($T2): refused, with the reason" --now "$T2" rollout promote
run "7. After the bake ($T3): promote and deploy the fleet; at midday the servers stay reboot pending" --now "$T3" rollout promote --deploy
run "   That night ($T4), cron's 'patchctl reboot': the servers reboot in lab-nightly, clients never" --now "$T4" reboot
states "   Daily verification: what was approved is installed; clients wait for their users' restart" --now "$T4" verify
run "8. The rollout" --now "$T3" rollout status
run "9. The report: nothing approved is missing; the major upgrade and the rejected package remain" --now "$T4" report --stale-days 30
run "10. The audit trail" audit --last 12

# What the demo left, for an operator to explore: the same store, policy and inventory.
REPORT_HTML="$HOME_DIR/demo-report.html"
if ! out=$("$PATCHCTL" --now "$T4" report --stale-days 30 --format html --output "$REPORT_HTML" 2>&1); then
  echo "$out" >&2
  exit 1
fi
INVENTORY=$("$PATCHCTL" config show --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["inventory"]["value"])')
PATCHCTL_BIN=$(command -v "$PATCHCTL")
PATCHCTL_DIR=$(cd "$(dirname "$PATCHCTL_BIN")" && pwd)
printf '\n\033[1m== Explore what the demo left\033[0m\n'
echo "The lab is still up ('patchctl lab status'; 'patchctl lab down' stops it). In a shell:"
if [ "$(command -v patchctl || true)" != "$PATCHCTL_DIR/patchctl" ]; then
  printf 'export PATH=%q:"$PATH"\n' "$PATCHCTL_DIR"
fi
printf 'export PATCHCTL_DB=%q\n' "$PATCHCTL_DB"
printf 'export PATCHCTL_POLICY=%q\n' "$PATCHCTL_POLICY"
printf 'export PATCHCTL_INVENTORY=%q\n' "$INVENTORY"
cat <<EOF
then try:
  patchctl report                  compliance today (the real clock)
  patchctl updates                 the catalog and each update's state under the demo policy
  patchctl audit                   every decision, who made it and why
  patchctl rollout status          the rollout's waves
The demo's clock ended at $T4: add --now to see it as the demo did, e.g.
  patchctl --now $T4 rollout status
The report as HTML (open it in a browser): $REPORT_HTML
EOF
