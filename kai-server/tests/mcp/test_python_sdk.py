"""kai-server's /mcp endpoint driven by the official Python MCP SDK (`mcp` on PyPI).

scripts/test_mcp.sh starts the server over the sample catalog and sets KAI_MCP_URL. The
SDK speaks revision 2026-07-28 with `mode="2026-07-28"` or `mode="auto"`, and the
initialize handshake of the earlier revisions with `mode="legacy"`. Every tool test runs
in each mode. Raw HTTP tests
at the end check what the SDK does not show: the status codes of rejected requests.
"""

import base64
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import anyio
import jsonschema
import pytest
from mcp import Client

URL = os.environ.get("KAI_MCP_URL", "")
REPO = Path(__file__).resolve().parents[3]
QUERIES = REPO / "examples" / "queries"
MODERN = "2026-07-28"
# The newest revision with the initialize handshake, which `mode="legacy"` offers.
HANDSHAKE = "2025-11-25"
TOOLS = {
    "assess_image_quality",
    "embed_text",
    "get_parameters",
    "get_reconstruction_file",
    "get_reconstruction_job",
    "recognize_material",
    "search_materials",
    "submit_reconstruction",
    "suggest_parameters",
}

pytestmark = pytest.mark.skipif(not URL, reason="KAI_MCP_URL is unset; run scripts/test_mcp.sh")

# Output schemas by tool name, listed once.
OUTPUT_SCHEMAS: dict[str, dict] = {}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["legacy", "auto", MODERN])
def mode(request: pytest.FixtureRequest) -> str:
    """The SDK's connection mode: the initialize handshake, `server/discover` (which
    settles on 2026-07-28 with kai), or 2026-07-28 adopted without asking the server."""
    return request.param


def photo(name: str) -> str:
    return base64.b64encode((QUERIES / name).read_bytes()).decode("ascii")


async def call(client: Client, tool: str, arguments: dict) -> dict:
    """Calls a tool that must succeed and returns its structured output, after checking it
    against the tool's output schema and against its text content."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""
    assert not result.is_error, f"{tool}: {text}"
    output = result.structured_content
    assert isinstance(output, dict), f"{tool} returned no structured content"
    if not OUTPUT_SCHEMAS:
        for listed in (await client.list_tools()).tools:
            OUTPUT_SCHEMAS[listed.name] = listed.output_schema
    jsonschema.validate(output, OUTPUT_SCHEMAS[tool])
    assert json.loads(text) == output
    return output


async def tool_error(client: Client, tool: str, arguments: dict) -> str:
    """Calls a tool that must fail and returns its error message."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} {arguments} succeeded: {result.structured_content}"
    assert result.structured_content is None
    return result.content[0].text


@pytest.mark.anyio
async def test_connect_reports_kai(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        assert client.protocol_version == (HANDSHAKE if mode == "legacy" else MODERN)
        if mode == MODERN:
            # A pinned client learns nothing about the server when it connects.
            return
        assert client.server_info.name == "kai-server"
        assert client.server_info.version
        assert "recognize_material" in (client.instructions or "")


@pytest.mark.anyio
async def test_lists_eight_tools_with_schemas(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        for tool in tools:
            assert tool.input_schema["type"] == "object", tool.name
            assert tool.output_schema["type"] == "object", tool.name
            assert tool.description, tool.name
            jsonschema.Draft202012Validator.check_schema(tool.input_schema)
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)


@pytest.mark.anyio
async def test_recognizes_photos_by_type(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        for name, material_type in [
            ("altered-red-brick-white-mortar.jpg", "brick"),
            ("altered-olive-stained-planks.jpg", "wood"),
        ]:
            output = await call(
                client, "recognize_material", {"imageBase64": photo(name), "topK": 3}
            )
            assert len(output["materials"]) == 3
            assert output["classes"][0]["materialType"] == material_type, name
            assert output["unknown"] is False
            assert output["processingTimeMs"] > 0


@pytest.mark.anyio
async def test_search_for_oak_finds_wood(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        output = await call(client, "search_materials", {"query": "oak", "topK": 5})
        assert len(output["results"]) == 5
        assert output["results"][0]["materialType"] == "wood"
        filtered = await call(
            client, "search_materials", {"query": "grey", "materialType": "Stone", "topK": 50}
        )
        assert filtered["results"]
        assert {r["materialType"] for r in filtered["results"]} == {"stone"}


@pytest.mark.anyio
async def test_embeds_texts(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        output = await call(client, "embed_text", {"texts": ["oak parquet", "steel sheet"]})
        assert output["dimension"] == 384
        assert len(output["vectors"]) == 2
        assert all(len(v) == 384 for v in output["vectors"])
        assert output["model"]


@pytest.mark.anyio
async def test_assesses_quality_with_thresholds(mode: str) -> None:
    image = photo("heldout-grey-brick-wall.jpg")
    async with Client(URL, mode=mode) as client:
        report = await call(client, "assess_image_quality", {"imageBase64": image})
        assert report["width"] > 0
        assert 0 <= report["score"] <= 1
        strict = await call(
            client,
            "assess_image_quality",
            {"imageBase64": image, "thresholds": {"minSharpness": 1e9}},
        )
        assert strict["passed"] is False
        assert "blurry" in strict["reasons"]


@pytest.mark.anyio
async def test_gets_parameters(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        current = await call(client, "get_parameters", {"name": "standard"})
        assert current["name"] == "standard"
        assert current["values"]["recognition.top_k"] == 8
        first = await call(client, "get_parameters", {"name": "standard", "version": 1})
        assert first["version"] == 1
        assert current["version"] > first["version"]


@pytest.mark.anyio
async def test_suggests_parameters_from_similar_results(mode: str) -> None:
    # scripts/test_mcp.sh records score 0.9 for `standard` and 0.4 for `premium` on
    # red-brown-plank-floor, whose text embedding is close to its own name's.
    async with Client(URL, mode=mode) as client:
        embedded = await call(client, "embed_text", {"texts": ["Red-brown plank flooring"]})
        vector = embedded["vectors"][0]
        best = await call(client, "suggest_parameters", {"embedding": vector})
        assert best["fallback"] is False
        assert best["set"]["name"] == "standard"
        assert best["evidence"][0]["materialId"] == "red-brown-plank-floor"
        lowest = await call(
            client, "suggest_parameters", {"embedding": vector, "higherIsBetter": False}
        )
        assert lowest["set"]["name"] == "premium"
        by_material = await call(client, "suggest_parameters", {"materialId": "dark-knotty-boards"})
        assert by_material["set"]["name"]


@pytest.mark.anyio
async def test_invalid_calls_are_tool_errors(mode: str) -> None:
    async with Client(URL, mode=mode) as client:
        assert "imageBase64" in await tool_error(
            client, "recognize_material", {"imageBase64": "%%%"}
        )
        corrupt = base64.b64encode(b"not an image at all").decode()
        assert "image" in await tool_error(client, "recognize_material", {"imageBase64": corrupt})
        assert "topK" in await tool_error(
            client, "search_materials", {"query": "oak", "topK": "ten"}
        )
        assert "no-such-set" in await tool_error(client, "get_parameters", {"name": "no-such-set"})
        assert "materialId" in await tool_error(client, "suggest_parameters", {})
        # The server still serves requests after the failed calls.
        output = await call(client, "search_materials", {"query": "brick"})
        assert output["results"][0]["materialType"] == "brick"


@pytest.mark.anyio
async def test_reconstruction_job_runs_to_an_end() -> None:
    # Two photos of different materials: the job may fail for lack of matches, but it
    # must end with a consistent status either way.
    names = ["heldout-grey-brick-wall.jpg", "heldout-weathered-plank.jpg"]
    images = [{"name": name, "data": photo(name)} for name in names]
    async with Client(URL, mode="auto") as client:
        job = await call(client, "submit_reconstruction", {"images": images, "set": "standard"})
        assert job["status"] in {"queued", "running"}
        assert job["finishedAt"] is None
        deadline = time.monotonic() + 300
        while job["status"] in {"queued", "running"}:
            assert time.monotonic() < deadline, f"job {job['id']} did not finish: {job}"
            await anyio.sleep(0.2)
            job = await call(client, "get_reconstruction_job", {"id": job["id"]})
        assert job["finishedAt"]
        if job["status"] == "failed":
            assert job["error"]["message"]
            assert job["result"] is None
        else:
            assert job["status"] == "succeeded"
            assert job["result"]["images"] == 2
            assert "cameras.txt" in job["files"]
        missing = await tool_error(client, "get_reconstruction_job", {"id": str(uuid.uuid4())})
        assert "not found" in missing
        too_few = await tool_error(client, "submit_reconstruction", {"images": images[:1]})
        assert "at least 2 photos" in too_few


@dataclass
class Reply:
    status: int
    headers: Message
    text: str

    def json(self) -> dict:
        return json.loads(self.text)


def send(method: str, body: dict | None = None, **headers: str) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.headers, err.read().decode())


def post(body: dict, **headers: str) -> Reply:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        **headers,
    }
    return send("POST", body, **headers)


def modern(method: str, params: dict | None = None, **headers: str) -> Reply:
    params = dict(params or {})
    params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "kai-tests", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method, "params": params}
    standard = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        standard["Mcp-Name"] = params["name"]
    return post(body, **{**standard, **headers})


def test_discover_over_http() -> None:
    response = modern("server/discover")
    assert response.status == 200, response.text
    result = response.json()["result"]
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "kai-server"
    assert MODERN in result["supportedVersions"]
    assert HANDSHAKE in result["supportedVersions"]


def test_stateless_call_over_http() -> None:
    response = modern("tools/call", {"name": "embed_text", "arguments": {"texts": ["oak"]}})
    assert response.status == 200, response.text
    assert "Mcp-Session-Id" not in response.headers
    assert response.json()["result"]["structuredContent"]["dimension"] == 384


def test_mismatched_method_header_is_400() -> None:
    response = modern(
        "tools/call",
        {"name": "embed_text", "arguments": {"texts": ["oak"]}},
        **{"Mcp-Method": "tools/list"},
    )
    assert response.status == 400, response.text
    assert "error" in response.json()


def test_mismatched_name_header_is_400() -> None:
    response = modern(
        "tools/call",
        {"name": "embed_text", "arguments": {"texts": ["oak"]}},
        **{"Mcp-Name": "search_materials"},
    )
    assert response.status == 400, response.text


def test_disallowed_origin_is_403() -> None:
    assert modern("tools/list", Origin="https://evil.example").status == 403
    assert modern("tools/list", Origin="http://localhost").status == 200


def test_unknown_host_is_403() -> None:
    assert modern("tools/list", Host="attacker.example").status == 403


def test_oldest_revision_gets_a_session() -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "kai-tests", "version": "0"},
        },
    }
    # The response is an event stream that ends after the result.
    response = post(initialize)
    assert response.status == 200, response.text
    session = response.headers["Mcp-Session-Id"]
    assert session
    assert '"protocolVersion":"2024-11-05"' in response.text
    assert '"name":"kai-server"' in response.text
    closed = send("DELETE", **{"Mcp-Session-Id": session})
    assert closed.status < 300, closed.text
