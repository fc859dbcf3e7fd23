#!/bin/sh
# The image's entrypoint: read secrets kept in files (compose or Kubernetes secrets) into
# the variables releasegate and libpq read, then run the command.
#   PGPASSWORD_FILE                  -> PGPASSWORD (the PostgreSQL password; libpq reads it)
#   RELEASEGATE_DATABASE_URL_FILE    -> RELEASEGATE_DATABASE_URL
#   RELEASEGATE_OIDC_CLIENT_SECRET_FILE -> RELEASEGATE_OIDC_CLIENT_SECRET (the dashboard's
#                                      client at the identity provider)
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
if [ -n "${RELEASEGATE_OIDC_CLIENT_SECRET_FILE:-}" ]; then
    RELEASEGATE_OIDC_CLIENT_SECRET="$(cat "$RELEASEGATE_OIDC_CLIENT_SECRET_FILE")"
    export RELEASEGATE_OIDC_CLIENT_SECRET
fi
exec "$@"
