#!/bin/sh
# The API tour, in order, against a fresh demo workspace (`inbox demo`, then `inbox serve`; or `make serve`).
# Run it with `sh docs/tour.sh`; INBOX_URL picks the server (default http://127.0.0.1:8080).
# Each step prints "== METHOD PATH -> status" and the body; a status other than the one the step
# expects stops the tour. tests/test_tour.py runs it, and keeps the README's copy equal to this file.
set -eu
R="${INBOX_URL:-http://127.0.0.1:8080}"
B="$R/api/v1"
JSON="Content-Type: application/json"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

step() {  # step STATUS METHOD PATH [curl options...]
  want=$1 method=$2 path=$3
  shift 3
  case $path in /hooks/*) url="$R$path" ;; *) url="$B$path" ;; esac   # webhooks are outside /api/v1
  got=$(curl -sS -o "$OUT" -w '%{http_code}' -X "$method" "$@" "$url")
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

# A chat channel: a customer writes through its signed webhook, the admin answers, and the reply goes
# out to the provider, here a few lines of Python on this machine (`make serve` allows local
# receivers; see docs/outbound.md for the payload and its Standard Webhooks signature).
PROVIDER_PORT="${PROVIDER_PORT:-8091}"
PROVIDER_LOG=$(mktemp)
python3 -c '
import http.server, sys
class Provider(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        print("provider received", self.headers["webhook-id"], body.decode(), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{\"id\": \"provider-42\"}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Provider).serve_forever()
' "$PROVIDER_PORT" > "$PROVIDER_LOG" &
PROVIDER=$!
trap 'rm -f "$OUT" "$PROVIDER_LOG"; kill $PROVIDER 2>/dev/null' EXIT
step 200 GET /pipelines -H "$ADMIN"
PIPELINE=$(field 'd["items"][0]["id"]')
step 201 POST /channels -H "$ADMIN" -H "$JSON" -d "{\"name\": \"WhatsApp\", \"pipeline_id\": $PIPELINE}"
CHANNEL=$(field 'd["id"]')
SECRET=$(field 'd["secret"]')                    # shown once: the provider signs with it, we sign with it
step 200 PATCH "/channels/$CHANNEL" -H "$ADMIN" -H "$JSON" \
     -d "{\"outbound_url\": \"http://127.0.0.1:$PROVIDER_PORT/outbound\"}"
MSG='{"id": "wamid-1", "from": {"handle": "+15550001", "name": "Jane Doe"}, "text": "Is my order on its way?"}'
NOW=$(date +%s)
SIG=$(python3 -c 'import hashlib, hmac, sys; print("sha256=" + hmac.new(sys.argv[1].encode(),
      (sys.argv[2] + "." + sys.argv[3]).encode(), hashlib.sha256).hexdigest())' "$SECRET" "$NOW" "$MSG")
step 201 POST "/hooks/chat/$CHANNEL" -H "$JSON" -H "X-Inbox-Timestamp: $NOW" -H "X-Inbox-Signature: $SIG" \
     -d "$MSG"                                    # a new contact, an incoming lead, the conversation
CHAT=$(field 'd["conversation_id"]')
step 201 POST "/chats/$CHAT/messages" -H "$ADMIN" -H "$JSON" -d '{"text": "Yes: it ships today."}'
                                                  # "status": "queued": stored with its outbox row
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  grep -q "provider received" "$PROVIDER_LOG" && break
  sleep 0.25
done
cat "$PROVIDER_LOG"                               # what the provider got: webhook-id and the payload
step 200 GET "/chats/$CHAT/messages?limit=1" -H "$ADMIN"   # "status": "sent", "attempts": 1
step 200 PATCH "/chats/$CHAT" -H "$ADMIN" -H "$JSON" -d '{"status": "resolved"}'
step 200 GET "/chats?status=resolved" -H "$ADMIN"

# Remove Tom, moving his records to Lena in the same transaction; then disable Maria.
step 204 DELETE "/users/$TOM?reassign_to=$LENA" -H "$ADMIN"
step 200 GET "/leads/$LEAD" -H "$ADMIN"           # Lena's now
step 200 PATCH "/users/$MARIA" -H "$ADMIN" -H "$JSON" -d '{"is_active": false}'
step 401 GET /account -H "$MARIA_SESSION"         # her sessions ended at once
step 403 POST /auth/login -H "$JSON" -d '{"email": "maria@demo.inbox", "password": "demo-maria-pass"}'
                                                  # and she cannot sign in again
step 200 GET /sessions -H "$ADMIN"                # own sessions; DELETE /sessions logs out the others
step 200 GET /openapi.json                        # the whole API as OpenAPI 3.1
