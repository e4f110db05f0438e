"""End-to-end flows against the Lighthouse MCP gateway, driven by the official
Python MCP SDK (mcp==2.3.0, see requirements.txt).

    python flows.py legacy   # protocol 2025-11-25: initialize handshake, MCP-Session-Id
    python flows.py 2026     # protocol 2026-07-28: server/discover, per-request _meta, no session

Environment:
    LH_URL          gateway base URL, e.g. http://127.0.0.1:3000 (MCP endpoint: $LH_URL/mcp)
    LH_ADMIN_TOKEN  admin bearer token, used only to mint one token per agent

Prints one line per step and exits 0 only when every step passes (1 when a step
fails, 2 on bad usage). The whole run is bounded by a 60 s timeout. Agent names
carry a random suffix, so repeated runs against one gateway do not interfere.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestFormParams, ElicitRequestParams, ElicitResult, Implementation
from pydantic import ValidationError

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
TOOLS = {"ask", "inbox", "respond", "check", "withdraw", "wait_for_messages", "relay_to_human"}
OVERALL_TIMEOUT_S = 60
CALL_TIMEOUT_S = 35  # above the longest waitSeconds (25) the gateway honours
CLIENT_INFO = Implementation(name="lighthouse-flows-py", version="1")


class StepFailed(Exception):
    """A flow expectation did not hold; the message says which one."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def brief(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "…"


def summarize(error: BaseException) -> str:
    """One line for an unexpected exception; pydantic errors mean the SDK rejected a gateway result."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}" for detail in error.errors()[:3]
        )
        return f"the SDK rejected a result ({error.error_count()} validation errors): {problems}"
    return brief(f"{type(error).__name__}: {error}".replace("\n", " | "), 400)


def innermost(error: BaseException) -> BaseException:
    """The first leaf of a (possibly nested) exception group; task groups wrap what they propagate."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def concurrently(*tasks: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run the zero-argument coroutine functions side by side; return their results in order."""
    results: list[Any] = [None] * len(tasks)

    async def run(index: int, task: Callable[[], Awaitable[Any]]) -> None:
        results[index] = await task()

    try:
        async with anyio.create_task_group() as group:
            for index, task in enumerate(tasks):
                group.start_soon(run, index, task)
    except BaseExceptionGroup as failed:
        raise innermost(failed) from None
    return results


# --- wire observation --------------------------------------------------------------------------


@dataclass
class WireRecord:
    http_method: str
    rpc: str  # JSON-RPC method, "response" for a client answer, "" for GET/DELETE
    protocol_header: str | None
    params: dict[str, Any]


@dataclass
class WireLog:
    """Every HTTP request an MCP client sends, as seen by an httpx2 request hook."""

    records: list[WireRecord] = field(default_factory=list)

    async def observe(self, request: httpx2.Request) -> None:
        body = json.loads(request.content) if request.content else {}
        rpc = body.get("method") or ("response" if "result" in body or "error" in body else "")
        self.records.append(
            WireRecord(request.method, rpc, request.headers.get("mcp-protocol-version"), body.get("params") or {})
        )

    def methods(self) -> list[str]:
        return [record.rpc for record in self.records if record.rpc]

    def tool_calls(self, tool: str) -> list[WireRecord]:
        return [r for r in self.records if r.rpc == "tools/call" and r.params.get("name") == tool]


# --- the gateway: plain HTTP API and MCP clients -----------------------------------------------


@dataclass
class Gateway:
    base_url: str
    admin_token: str
    era: str  # "legacy" | "2026"
    http: httpx2.AsyncClient

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    async def mint_token(self, agent: str) -> str:
        response = await self.http.post(
            "/v1/tokens", json={"agent": agent}, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        expect(response.status_code == 201, f"POST /v1/tokens for {agent}: {response.status_code} {response.text}")
        body = response.json()
        expect(body.get("agent") == agent and body.get("token"), f"POST /v1/tokens returned {brief(body)}")
        return body["token"]

    async def create_elicitation(self, token: str, request: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/v1/elicitations", json=request, headers=bearer(token))
        expect(response.status_code == 201, f"POST /v1/elicitations: {response.status_code} {response.text}")
        return response.json()

    async def get_elicitation(self, token: str, elicitation_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/elicitations/{elicitation_id}", headers=bearer(token))
        expect(response.status_code == 200, f"GET /v1/elicitations/{elicitation_id}: {response.status_code}")
        return response.json()

    async def pending_inbox(self, token: str, agent: str) -> list[dict[str, Any]]:
        """Every page of GET /v1/agents/<agent>/elicitations?role=inbox&status=pending."""
        items: list[dict[str, Any]] = []
        query: dict[str, str] = {"role": "inbox", "status": "pending"}
        for _ in range(20):
            response = await self.http.get(f"/v1/agents/{agent}/elicitations", params=query, headers=bearer(token))
            expect(response.status_code == 200, f"GET inbox of {agent}: {response.status_code} {response.text}")
            page = response.json()
            items += page["items"]
            if not page.get("nextCursor"):
                return items
            query["cursor"] = page["nextCursor"]
        raise StepFailed(f"inbox of {agent} did not end after 20 pages")

    async def post_mcp(self, body: dict[str, Any], headers: dict[str, str]) -> httpx2.Response:
        base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        return await self.http.post(self.mcp_url, content=json.dumps(body), headers=base | headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Agent:
    name: str
    token: str
    client: Client
    wire: WireLog
    prompts: list[ElicitRequestParams]  # what this agent's human was asked, in order


@asynccontextmanager
async def connect(gateway: Gateway, name: str, token: str | None, *, human: bool) -> AsyncIterator[Agent]:
    """An SDK client for one agent. With `human`, it declares elicitation and accepts every prompt."""
    wire = WireLog()
    prompts: list[ElicitRequestParams] = []

    async def approving_human(_context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        prompts.append(params)
        return ElicitResult(action="accept", content={"approve": True})

    http = httpx2.AsyncClient(
        headers=bearer(token) if token else {},
        timeout=httpx2.Timeout(30, read=300),  # the SDK's defaults: response streams may stay open
        event_hooks={"request": [wire.observe]},
    )
    # "auto" sends server/discover and would quietly fall back to initialize; step 1 asserts it did not.
    mode = "legacy" if gateway.era == "legacy" else "auto"
    async with http:
        client = Client(
            streamable_http_client(gateway.mcp_url, http_client=http),
            mode=mode,
            client_info=CLIENT_INFO,
            elicitation_callback=approving_human if human else None,
            read_timeout_seconds=CALL_TIMEOUT_S,
        )
        async with client:
            yield Agent(name, token or "", client, wire, prompts)


async def call(agent: Agent, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; return its structuredContent."""
    result = await agent.client.call_tool(tool, arguments)
    expect(not result.is_error, f"{agent.name}: {tool} returned a tool error: {describe(result)}")
    expect(isinstance(result.structured_content, dict), f"{tool}: no structuredContent: {describe(result)}")
    return result.structured_content


async def call_failing(agent: Agent, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """Call a tool that must answer with a tool error (isError: true)."""
    result = await agent.client.call_tool(tool, arguments)
    expect(result.is_error, f"{agent.name}: {tool} should have failed but returned {describe(result)}")
    return result


def describe(result: CallToolResult) -> str:
    text = " ".join(block.text for block in result.content if getattr(block, "type", "") == "text")
    return brief({"text": text, "structuredContent": result.structured_content})


def find(items: list[dict[str, Any]], **fields: Any) -> dict[str, Any] | None:
    return next((item for item in items if all(item.get(k) == v for k, v in fields.items())), None)


# --- the flows ---------------------------------------------------------------------------------


@dataclass
class Flow:
    gateway: Gateway
    tag: str
    alice: Agent
    bob: Agent  # his client has a human behind it

    @property
    def legacy(self) -> bool:
        return self.gateway.era == "legacy"


RAW_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LEGACY_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "raw-httpx2", "version": "1"},
    },
}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
APPROVE_SCHEMA = {"type": "object", "properties": {"approve": {"type": "boolean"}}, "required": ["approve"]}


async def step_connect_and_list(flow: Flow) -> str:
    notes = []
    for agent in (flow.alice, flow.bob):
        client = agent.client
        version = client.protocol_version
        if flow.legacy:
            expect(version == LEGACY_VERSION, f"{agent.name} negotiated {version}, expected {LEGACY_VERSION}")
            expect(client.session.initialize_result is not None, f"{agent.name}: no initialize result")
            how = "initialize"
        else:
            discover = client.session.discover_result
            expect(
                version == MODERN_VERSION and discover is not None,
                f"{agent.name} fell back to {version} via initialize: server/discover failed or its result "
                f"was not acceptable to the SDK (wire: {agent.wire.methods()})",
            )
            expect("initialize" not in agent.wire.methods(), f"{agent.name} sent initialize: {agent.wire.methods()}")
            how = f"server/discover (supportedVersions {discover.supported_versions})"
        notes.append(f"{agent.name} speaks {version} via {how}")

        listed = await client.list_tools()
        names = {tool.name for tool in listed.tools}
        expect(names == TOOLS, f"tools/list for {agent.name}: expected {sorted(TOOLS)}, got {sorted(names)}")

    expected = LEGACY_VERSION if flow.legacy else MODERN_VERSION
    stamped = {record.protocol_header for record in flow.alice.wire.records if record.rpc not in ("", "initialize")}
    expect(stamped == {expected}, f"MCP-Protocol-Version headers sent: {stamped}, expected only {expected}")
    server = flow.alice.client.server_info
    server_note = f"server {server.name} {server.version}" if server else "server did not identify itself"
    return f"{'; '.join(notes)}; {server_note}"


async def step_round_trip(flow: Flow) -> str:
    alice, bob = flow.alice, flow.bob
    message = f"Ship release {flow.tag}?"
    started = time.monotonic()

    async def alice_asks() -> tuple[dict[str, Any], float]:
        arguments = {"to": bob.name, "message": message, "requestedSchema": ANSWER_SCHEMA, "waitSeconds": 20}
        answered = await call(alice, "ask", arguments)
        return answered, time.monotonic() - started

    async def bob_answers() -> tuple[dict[str, Any], float]:
        inbox = await call(bob, "inbox", {"waitSeconds": 20})
        seen = time.monotonic() - started
        item = find(inbox["items"], message=message)
        expect(item, f"bob's inbox lacks alice's question: {brief(inbox)}")
        expect(item["from"] == alice.name and item["to"] == bob.name, f"inbox item has wrong parties: {brief(item)}")
        await call(bob, "respond", {"id": item["id"], "action": "accept", "content": {"answer": "yes"}})
        return item, seen

    (answered, round_trip), (item, seen) = await concurrently(alice_asks, bob_answers)
    expect(answered["id"] == item["id"], f"ask returned {answered['id']}, bob answered {item['id']}")
    expect(answered["status"] == "accepted", f"ask ended with status {answered['status']}: {brief(answered)}")
    content = (answered.get("response") or {}).get("content") or {}
    expect(content.get("answer") == "yes", f"ask response content is {brief(answered.get('response'))}")
    return f"round trip {round_trip * 1000:.0f} ms (bob's inbox woke after {seen * 1000:.0f} ms)"


async def step_inbox_since(flow: Flow) -> str:
    alice, bob = flow.alice, flow.bob
    before = await call(bob, "inbox", {})
    expect("position" in before, f"inbox result has no position: {brief(before)}")
    message = f"Rotate the keys for {flow.tag}?"
    delay = 0.5
    started = time.monotonic()

    async def bob_waits() -> tuple[dict[str, Any], float]:
        woken = await call(bob, "inbox", {"since": before["position"], "waitSeconds": 10})
        return woken, time.monotonic() - started

    async def alice_asks_later() -> dict[str, Any]:
        await anyio.sleep(delay)
        return await call(alice, "ask", {"to": bob.name, "message": message})

    (woken, waited), asked = await concurrently(bob_waits, alice_asks_later)
    expect(waited >= delay * 0.8, f"inbox since={before['position']} returned after {waited:.2f} s, before the ask")
    expect(find(woken["items"], id=asked["id"]), f"inbox since did not return the new request: {brief(woken)}")

    withdrawn = await call(alice, "withdraw", {"id": asked["id"]})
    expect(withdrawn["status"] == "withdrawn", f"withdraw left status {withdrawn['status']}")
    return f"woke {waited * 1000:.0f} ms after start, {(waited - delay) * 1000:.0f} ms after the ask; then withdrawn"


async def step_relay_to_human(flow: Flow) -> str:
    alice, bob = flow.alice, flow.bob
    message = f"Approve the deploy of {flow.tag}?"
    asked = await call(alice, "ask", {"to": bob.name, "message": message, "requestedSchema": APPROVE_SCHEMA})
    expect(asked["status"] == "pending", f"a fresh ask is {asked['status']}")
    bob.prompts.clear()
    wire_before = len(bob.wire.records)

    relayed = await call(bob, "relay_to_human", {"id": asked["id"], "waitSeconds": 20})

    expect(len(bob.prompts) == 1, f"bob's human was prompted {len(bob.prompts)} times")
    prompt = bob.prompts[0]
    expect(isinstance(prompt, ElicitRequestFormParams), f"the human got a {type(prompt).__name__}, not a form")
    expect(message in prompt.message, f"the human saw message {prompt.message!r}, not {message!r}")
    schema = prompt.requested_schema
    expect(
        schema.get("properties") == APPROVE_SCHEMA["properties"] and schema.get("required") == ["approve"],
        f"the human saw requestedSchema {brief(schema)}",
    )
    entry = find(relayed.get("relayed") or [], id=asked["id"])
    expect(entry, f"relay_to_human result does not list {asked['id']}: {brief(relayed)}")
    expect(entry["status"] == "accepted", f"relayed elicitation is {entry['status']}")

    checked = await call(alice, "check", {"id": asked["id"]})
    expect(checked["status"] == "accepted", f"alice's check says {checked['status']}")
    content = (checked.get("response") or {}).get("content") or {}
    expect(content.get("approve") is True, f"alice's check shows response {brief(checked.get('response'))}")

    sent = WireLog(bob.wire.records[wire_before:])
    rounds = sent.tool_calls("relay_to_human")
    if flow.legacy:
        answers = [record for record in sent.records if record.rpc == "response"]
        expect(len(rounds) == 1 and answers, f"expected one tools/call and a POSTed answer, sent {sent.methods()}")
        how = "elicitation/create on the tools/call SSE stream, answer POSTed back"
    else:
        retries = [record.params for record in rounds[1:] if "inputResponses" in record.params]
        expect(retries, f"no tools/call retry carried inputResponses ({len(rounds)} relay_to_human calls sent)")
        state = "with" if "requestState" in retries[0] else "without"
        how = f"input_required ({len(rounds)} tools/call rounds; inputResponses retried {state} requestState)"
    return f"human prompted via {how}; alice sees approve=true"


async def step_relay_without_capability(flow: Flow) -> str:
    alice = flow.alice
    asked = await call(alice, "ask", {"to": flow.bob.name, "message": f"Unrelayable {flow.tag}"})
    async with connect(flow.gateway, flow.bob.name, flow.bob.token, human=False) as bare_bob:
        try:
            failed = await call_failing(bare_bob, "relay_to_human", {"id": asked["id"], "waitSeconds": 2})
        except MCPError as error:
            raise StepFailed(f"relay_to_human without the capability raised a protocol error: {error}") from None
    still = await call(alice, "check", {"id": asked["id"]})
    expect(still["status"] == "pending", f"a failed relay changed the request to {still['status']}")
    await call(alice, "withdraw", {"id": asked["id"]})
    problem = failed.structured_content or {}
    return f"isError true ({problem.get('status', '-')} {problem.get('title', describe(failed))})"


async def step_schema_rejected(flow: Flow) -> str:
    nested = {
        "type": "object",
        "properties": {"address": {"type": "object", "properties": {"street": {"type": "string"}}}},
    }
    failed = await call_failing(
        flow.alice, "ask", {"to": flow.bob.name, "message": "Where do you live?", "requestedSchema": nested}
    )
    problem = failed.structured_content
    expect(isinstance(problem, dict), f"the tool error carries no problem document: {describe(failed)}")
    expect(problem.get("status") == 422, f"problem status is {problem.get('status')}, expected 422")
    pointers = [error.get("pointer", "") for error in problem.get("errors") or []]
    expect(
        any(pointer.startswith("/requestedSchema") for pointer in pointers),
        f"no error pointer under /requestedSchema: {brief(problem)}",
    )
    return f"422 with pointers {pointers}"


async def step_unauthenticated(flow: Flow) -> str:
    gateway = flow.gateway
    try:
        async with connect(gateway, "anonymous", None, human=False) as anonymous:
            await anonymous.client.list_tools()
    except BaseException as failed:  # the SDK wraps connect errors in exception groups
        error = innermost(failed)
        if isinstance(error, StepFailed | anyio.get_cancelled_exc_class() | KeyboardInterrupt):
            raise
        sdk_note = f"SDK client refused: {summarize(error)}"
    else:
        raise StepFailed("an SDK client without a token connected and listed tools")

    if flow.legacy:
        probe, headers = RAW_INITIALIZE, {}
    else:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        probe = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
        headers = {"MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/list"}
    for label, credentials in (("no token", {}), ("garbage token", bearer("not-a-token"))):
        response = await gateway.post_mcp(probe, headers | credentials)
        challenge = response.headers.get("www-authenticate", "")
        expect(response.status_code == 401, f"{probe['method']} with {label}: HTTP {response.status_code}")
        expect(challenge.startswith("Bearer"), f"{label}: WWW-Authenticate is {challenge!r}")
    return f"{sdk_note}; raw {probe['method']} → 401 + WWW-Authenticate: Bearer (no token, garbage token)"


async def step_sessions(flow: Flow) -> str:
    gateway, token = flow.gateway, flow.alice.token
    session_headers = bearer(token) | {"MCP-Protocol-Version": LEGACY_VERSION}
    tools_list = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    bogus = await gateway.post_mcp(tools_list, session_headers | {"MCP-Session-Id": "bogus"})
    expect(bogus.status_code == 404, f"tools/list with MCP-Session-Id: bogus → HTTP {bogus.status_code}")

    opened = await gateway.post_mcp(RAW_INITIALIZE, bearer(token))
    session = opened.headers.get("mcp-session-id")
    expect(opened.status_code == 200 and session, f"initialize → HTTP {opened.status_code}, session {session!r}")
    headers = session_headers | {"MCP-Session-Id": session}
    initialized = await gateway.post_mcp({"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
    expect(initialized.status_code in (200, 202), f"notifications/initialized → HTTP {initialized.status_code}")
    alive = await gateway.post_mcp(tools_list, headers)
    expect(alive.status_code == 200, f"tools/list in a fresh session → HTTP {alive.status_code}")

    ended = await gateway.http.delete(gateway.mcp_url, headers=headers)
    expect(ended.status_code in (200, 202, 204), f"DELETE of the session → HTTP {ended.status_code}")
    after = await gateway.post_mcp(tools_list, headers)
    expect(after.status_code == 404, f"tools/list after DELETE → HTTP {after.status_code}")
    return "bogus session → 404; DELETE ends a session, reuse → 404"


async def step_interop(flow: Flow) -> str:
    gateway, alice, bob = flow.gateway, flow.alice, flow.bob

    over_http = await gateway.create_elicitation(
        alice.token, {"to": bob.name, "message": f"Via HTTP {flow.tag}", "requestedSchema": ANSWER_SCHEMA}
    )
    inbox = await call(bob, "inbox", {})
    seen = find(inbox["items"], id=over_http["id"])
    expect(seen, f"the HTTP-created {over_http['id']} is not in bob's MCP inbox: {brief(inbox)}")
    expect(seen["from"] == alice.name and seen["message"] == over_http["message"], f"MCP sees {brief(seen)}")

    over_mcp = await call(alice, "ask", {"to": bob.name, "message": f"Via MCP {flow.tag}"})
    pending = await gateway.pending_inbox(bob.token, bob.name)
    expect(find(pending, id=over_mcp["id"]), f"the MCP-created {over_mcp['id']} is not in bob's HTTP inbox")
    fetched = await gateway.get_elicitation(alice.token, over_mcp["id"])
    expect(fetched["status"] == "pending" and fetched["message"] == over_mcp["message"], f"GET: {brief(fetched)}")

    for elicitation in (over_http, over_mcp):
        await call(alice, "withdraw", {"id": elicitation["id"]})
    return "HTTP → MCP inbox and MCP → HTTP inbox both visible"


@dataclass(frozen=True)
class Step:
    label: str
    run: Callable[[Flow], Awaitable[str]]
    legacy_only: bool = False
    fatal: bool = False  # later steps mean nothing when this one fails


STEPS = [
    # Fatal: in the 2026 era a client that fell back to initialize would run every later step in the wrong era.
    Step("1 connect + tools/list", step_connect_and_list, fatal=True),
    Step("2 ask/inbox/respond round trip", step_round_trip),
    Step("3 inbox since", step_inbox_since),
    Step("4 relay_to_human", step_relay_to_human),
    Step("5 relay_to_human without elicitation", step_relay_without_capability),
    Step("6 schema outside the subset", step_schema_rejected),
    Step("7 unauthenticated", step_unauthenticated),
    Step("8 unknown and deleted sessions", step_sessions, legacy_only=True),
    Step("9 HTTP/MCP interop", step_interop),
]


async def run(gateway: Gateway, progress: list[str]) -> int:
    """Run every step; `progress` gets the label of each step as it starts."""
    tag = secrets.token_hex(4)
    names = {role: f"py-{role}-{tag}" for role in ("alice", "bob")}
    print(f"era {gateway.era}: {gateway.mcp_url}, agents {', '.join(names.values())}")
    tokens = {role: await gateway.mint_token(name) for role, name in names.items()}

    failures = 0
    async with AsyncExitStack() as stack:
        try:
            alice = await stack.enter_async_context(connect(gateway, names["alice"], tokens["alice"], human=False))
            bob = await stack.enter_async_context(connect(gateway, names["bob"], tokens["bob"], human=True))
        except BaseException as failed:
            error = innermost(failed)
            if not isinstance(error, Exception):
                raise
            print(f"FAIL 1 connect + tools/list: {summarize(error)}")
            return 1
        flow = Flow(gateway, tag, alice, bob)
        for step in STEPS:
            progress.append(step.label)
            if step.legacy_only and not flow.legacy:
                print(f"SKIP {step.label}: legacy sessions only")
                continue
            try:
                print(f"PASS {step.label}: {await step.run(flow)}")
                continue
            except StepFailed as failed:
                print(f"FAIL {step.label}: {failed}")
            except Exception as failed:
                print(f"FAIL {step.label}: {summarize(innermost(failed))}")
            failures += 1
            if step.fatal:
                print("remaining steps not run")
                break
        print(
            f"protocol used by the SDK clients: {alice.client.protocol_version} (alice), "
            f"{bob.client.protocol_version} (bob)"
        )
    return failures


async def main(era: str, base_url: str, admin_token: str) -> int:
    async with httpx2.AsyncClient(base_url=base_url, timeout=10) as http:
        gateway = Gateway(base_url, admin_token, era, http)
        progress = ["setup"]
        with anyio.move_on_after(OVERALL_TIMEOUT_S) as deadline:
            failures = await run(gateway, progress)
        if deadline.cancelled_caught:
            print(f"FAIL {progress[-1]}: the flows did not finish within {OVERALL_TIMEOUT_S} s")
            return 1
    print(f"{'OK' if not failures else 'FAILED'}: era {era}, {failures} failing step(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    missing = [name for name in ("LH_URL", "LH_ADMIN_TOKEN") if not os.environ.get(name)]
    if len(sys.argv) != 2 or sys.argv[1] not in ("legacy", "2026") or missing:
        print("usage: LH_URL=... LH_ADMIN_TOKEN=... python flows.py <legacy|2026>", file=sys.stderr)
        if missing:
            print(f"flows.py: {' and '.join(missing)} not set", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(anyio.run(main, sys.argv[1], os.environ["LH_URL"].rstrip("/"), os.environ["LH_ADMIN_TOKEN"]))
    except StepFailed as failed:  # token minting failed before any step could run
        print(f"FAIL setup: {failed}")
        sys.exit(1)
    except httpx2.TransportError as failed:
        print(f"FAIL setup: cannot reach {os.environ['LH_URL']}: {type(failed).__name__}: {failed}")
        sys.exit(1)
