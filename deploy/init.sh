#!/bin/sh
# One-shot set-up of a shared store, run before the servers start (and again after each
# upgrade of releasegate; it is safe to run twice):
#   1. `releasegate db upgrade`: the schema of this release (servers refuse an outdated one);
#   2. `releasegate init`: checks the store and creates the audit key file if there is none
#      (at RELEASEGATE_AUDIT_KEY_FILE, mode 0600; back it up apart from the database);
#   3. the first admin token, written once to ADMIN_TOKEN_FILE (mode 0600) and nowhere else.
# Exit 0 when all is in place; non-zero, with the reason, otherwise.
set -eu
: "${ADMIN_TOKEN_FILE:=${RELEASEGATE_DIR:-.}/secrets/admin.token}"
umask 077

releasegate db upgrade
releasegate init

if [ -s "$ADMIN_TOKEN_FILE" ]; then
    echo "releasegate-init: the admin token is in $ADMIN_TOKEN_FILE (kept)" >&2
    exit 0
fi
mkdir -p "$(dirname "$ADMIN_TOKEN_FILE")"
status=0
releasegate token create --name admin --role admin > "$ADMIN_TOKEN_FILE.new" || status=$?
if [ "$status" -eq 0 ]; then
    mv "$ADMIN_TOKEN_FILE.new" "$ADMIN_TOKEN_FILE"
    echo "releasegate-init: created the admin token in $ADMIN_TOKEN_FILE" >&2
    exit 0
fi
rm -f "$ADMIN_TOKEN_FILE.new"
echo "releasegate-init: no admin token made; if an active token named admin exists but its" \
     "secret is lost, revoke it (releasegate token revoke admin) and run this again" >&2
exit "$status"
