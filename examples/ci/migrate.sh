#!/bin/sh
# sqlmorph in any CI system: the gate for merge requests and the deploy for
# the main branch, with no terminal. The same steps as github-actions.yml.
#
#   examples/ci/migrate.sh gate     # plan --yes, sqlmorph test, run --dry-run --yes
#   examples/ci/migrate.sh deploy   # sqlmorph run --yes
#
# Run it from the project (where sqlmorph.toml is, or below it). Settings
# come from sqlmorph.toml and the environment (flags > environment > file):
#   SQLMORPH_PRODUCTION   ssh://deploy@db.example.com/srv/app/app.sqlite3
#   SQLMORPH_SSH_KEY      the private key's text (a CI secret), written to a
#                         private temporary file removed on exit
#   SQLMORPH_KNOWN_HOSTS  the known_hosts line(s) of the host (a CI secret or
#                         variable; `ssh-keyscan` output checked once by hand)
#   SQLMORPH_BIN          the sqlmorph binary (default: sqlmorph on PATH)
# and the other SQLMORPH_* variables of the README (Configuration).
#
# Exit codes are sqlmorph's: 0 ok; 2 usage or input error; 3 the run would
# stop (or stopped) before production changed; 4 the deploy failed and
# production was restored. Approvals are never implied: the deploy passes
# --yes here, and data loss additionally needs --allow-destructive, which
# this script does not pass (add it deliberately, per migration, if needed).
set -eu

mode=${1:-}
bin=${SQLMORPH_BIN:-sqlmorph}

case $mode in
  gate | deploy) ;;
  *)
    echo "usage: $0 gate|deploy" >&2
    exit 2
    ;;
esac

# The SSH secrets, if given, into files only this user can read.
secrets=$(mktemp -d "${TMPDIR:-/tmp}/sqlmorph-ci.XXXXXX")
trap 'rm -rf "$secrets"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 700 "$secrets"
if [ -n "${SQLMORPH_SSH_KEY:-}" ]; then
  (umask 077 && printf '%s\n' "$SQLMORPH_SSH_KEY" >"$secrets/id")
  export SQLMORPH_SSH_IDENTITY="$secrets/id"
fi
if [ -n "${SQLMORPH_KNOWN_HOSTS:-}" ]; then
  (umask 077 && printf '%s\n' "$SQLMORPH_KNOWN_HOSTS" >"$secrets/known_hosts")
  export SQLMORPH_SSH_KNOWN_HOSTS="$secrets/known_hosts"
fi

if [ "$mode" = gate ]; then
  # 1. What would change, for the reviewer, and whether the deploy's run
  #    (--yes) would complete: 0 nothing to do and 1 changes pending pass;
  #    3 (it would stop: a rename to declare, data loss without
  #    --allow-destructive, a refusal) and 2 (input error) fail the gate.
  echo "== sqlmorph plan --yes --exit-code"
  status=0
  "$bin" plan --yes --exit-code || status=$?
  if [ "$status" -gt 1 ]; then
    echo "sqlmorph plan: the deploy would not go through (exit $status)" >&2
    exit "$status"
  fi
  # 2. The migration tests: the recipes against the fixtures of
  #    sqlmorph.toml's [test] (1: a case failed).
  echo "== sqlmorph test"
  "$bin" test
  # 3. The deploy itself, on copies, with the deploy's flags: it also runs
  #    a recipe (the `recipe` of sqlmorph.toml) and validates the result.
  echo "== sqlmorph run --dry-run --yes"
  "$bin" run --dry-run --yes
  exit 0
fi

echo "== sqlmorph run --yes"
"$bin" run --yes
