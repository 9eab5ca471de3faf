#!/bin/bash
# Container health check for kai-server: sends GET /health and exits 0 on a 200 status,
# 1 otherwise. The runtime image has no curl or wget, so the request goes through bash's
# /dev/tcp redirection.
set -euo pipefail

port=${MCP_SERVER_PORT:-8000}
host=${KAI_BIND_ADDRESS:-0.0.0.0}
# A server bound to every address is reached over loopback.
case $host in
    0.0.0.0) host=127.0.0.1 ;;
    ::) host=::1 ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "kai-server health check: connection to $host:$port failed; is kai-server running?" >&2
    exit 1
fi
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
# Stay below the image's HEALTHCHECK --timeout (5 s), so a slow server gets a message
# instead of a killed check.
timeout=4
status=
IFS= read -r -t "$timeout" status <&3 || true
status=${status%$'\r'}
# Read the rest of the response before closing, so the server's side of the connection
# ends in an orderly close instead of a reset ("Connection: close" ends it after the
# response).
while IFS= read -r -t 1 _ <&3; do :; done
exec 3<&-
case $status in
    "HTTP/1.1 200"* | "HTTP/1.0 200"*) exit 0 ;;
    "") echo "kai-server health check: GET /health on $host:$port got no response within ${timeout} s" >&2 ;;
    *) echo "kai-server health check: GET /health returned \"$status\"" >&2 ;;
esac
exit 1
