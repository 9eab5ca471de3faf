"""Opens an MCP session of revision 2025-06-18 and its standalone event stream at the
URL given, prints "stream open", and reads until the server closes the stream.

scripts/test_mcp.sh runs it to check that SIGTERM stops kai-server while a stream is open.
"""

import json
import sys
import urllib.request

REVISION = "2025-06-18"


def main(url: str) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": REVISION,
            "capabilities": {},
            "clientInfo": {"name": "kai-tests", "version": "0"},
        },
    }
    request = urllib.request.Request(url, json.dumps(initialize).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
        headers["MCP-Protocol-Version"] = REVISION
        response.read()

    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    request = urllib.request.Request(url, json.dumps(initialized).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()

    stream_headers = {**headers, "Accept": "text/event-stream"}
    del stream_headers["Content-Type"]
    request = urllib.request.Request(url, headers=stream_headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        print("stream open", flush=True)
        while response.readline():
            pass
    print("stream closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
