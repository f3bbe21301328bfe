#!/bin/sh
# The API tour, in order, against a fresh demo workspace (`inbox demo`, then `inbox serve`; or `make serve`).
# Run it with `sh docs/tour.sh`; INBOX_URL picks the server (default http://127.0.0.1:8080).
# Each step prints "== METHOD PATH -> status" and the body; a status other than the one the step
# expects stops the tour. tests/test_tour.py runs it, and keeps the README's copy equal to this file.
set -eu
B="${INBOX_URL:-http://127.0.0.1:8080}/api/v1"
JSON="Content-Type: application/json"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

step() {  # step STATUS METHOD PATH [curl options...]
  want=$1 method=$2 path=$3
  shift 3
  got=$(curl -sS -o "$OUT" -w '%{http_code}' -X "$method" "$@" "$B$path")
  echo "== $method $path -> $got"
  cat "$OUT"
  echo
  [ "$got" = "$want" ] || { echo "expected $want" >&2; exit 1; }
}
field() {  # field EXPR: a value from the last body, which EXPR reads as d
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$OUT" "$1"
}
login() {  # login EMAIL PASSWORD: sets AS to that user's Authorization header
  step 200 POST /auth/login -H "$JSON" -d "{\"email\": \"$1\", \"password\": \"$2\"}"
  AS="Authorization: Bearer $(field 'd["token"]')"
}

login admin@demo.inbox demo-admin-pass
ADMIN=$AS
step 200 GET /account -H "$ADMIN"                 # who am I, with effective rights
step 200 GET /users -H "$ADMIN"                   # users (colleagues see name and avatar only)
MARIA=$(field 'next(u["id"] for u in d["items"] if u["email"] == "maria@demo.inbox")')
TOM=$(field 'next(u["id"] for u in d["items"] if u["email"] == "tom@demo.inbox")')
LENA=$(field 'next(u["id"] for u in d["items"] if u["email"] == "lena@demo.inbox")')
step 200 GET "/users/$LENA/rights" -H "$ADMIN"    # effective rights, sources, conflicts (admin)
step 201 POST /roles -H "$ADMIN" -H "$JSON" \
     -d '{"name": "Viewer", "rights": {"leads": {"view": "M", "edit": "A"}}}'   # stored clamped: edit becomes M

# Leads, newest first, five at a time: each page's next_cursor asks for the next one.
step 200 GET "/leads?limit=5" -H "$ADMIN"
NEXT=$(field 'd["next_cursor"]')
step 200 GET "/leads?limit=5&cursor=$NEXT" -H "$ADMIN"   # the rest; next_cursor is null at the end
step 200 GET /leads/export -H "$ADMIN"            # CSV of what your export right covers
step 200 GET "/leads?responsible_user_id=$TOM&limit=1" -H "$ADMIN"
LEAD=$(field 'd["items"][0]["id"]')               # one of Tom's leads
step 200 GET "/access/explain?user_id=$MARIA&entity=leads&action=edit&record_id=$LEAD" -H "$ADMIN"
                                                  # why Maria may not edit it: the deciding rule and source

# The same lists through an agent's rights (Sales agent: her own leads only).
login maria@demo.inbox demo-maria-pass
MARIA_SESSION=$AS
step 200 GET /account -H "$MARIA_SESSION"
step 200 GET /leads -H "$MARIA_SESSION"
step 404 GET "/leads/$LEAD" -H "$MARIA_SESSION"   # not hers: 404, so its existence does not leak

# Remove Tom, moving his records to Lena in the same transaction; then disable Maria.
step 204 DELETE "/users/$TOM?reassign_to=$LENA" -H "$ADMIN"
step 200 GET "/leads/$LEAD" -H "$ADMIN"           # Lena's now
step 200 PATCH "/users/$MARIA" -H "$ADMIN" -H "$JSON" -d '{"is_active": false}'
step 401 GET /account -H "$MARIA_SESSION"         # her sessions ended at once
step 403 POST /auth/login -H "$JSON" -d '{"email": "maria@demo.inbox", "password": "demo-maria-pass"}'
                                                  # and she cannot sign in again
step 200 GET /sessions -H "$ADMIN"                # own sessions; DELETE /sessions logs out the others
step 200 GET /openapi.json                        # the whole API as OpenAPI 3.1
