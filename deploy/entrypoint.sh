#!/bin/sh
# The image's entrypoint: read secrets kept in files (compose or Kubernetes secrets) into
# the variables releasegate and libpq read, then run the command.
#   PGPASSWORD_FILE                  -> PGPASSWORD (the PostgreSQL password; libpq reads it)
#   RELEASEGATE_DATABASE_URL_FILE    -> RELEASEGATE_DATABASE_URL
# RELEASEGATE_AUDIT_KEY_FILE is read by releasegate itself.
set -eu
if [ -n "${PGPASSWORD_FILE:-}" ]; then
    PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
    export PGPASSWORD
fi
if [ -n "${RELEASEGATE_DATABASE_URL_FILE:-}" ]; then
    RELEASEGATE_DATABASE_URL="$(cat "$RELEASEGATE_DATABASE_URL_FILE")"
    export RELEASEGATE_DATABASE_URL
fi
exec "$@"
