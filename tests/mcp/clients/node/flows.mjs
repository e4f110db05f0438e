// Drives the Lighthouse MCP gateway with the official TypeScript MCP SDK clients.
//
//   node flows.mjs legacy   @modelcontextprotocol/client 2.x, protocol 2025-11-25 (initialize + session)
//   node flows.mjs 2026     @modelcontextprotocol/client 2.x, pinned to 2026-07-28 (server/discover,
//                           per-request _meta, stateless, input_required for relay_to_human)
//   node flows.mjs v1       @modelcontextprotocol/sdk 1.x, protocol 2025-11-25 (what most hosts ship)
//
// Setup: `npm ci` in this folder. Env: LH_URL (e.g. http://127.0.0.1:3000; the MCP endpoint is
// $LH_URL/mcp) and LH_ADMIN_TOKEN (mints one token per agent; agent names are unique per run).
// Prints one line per step and a closing "N passed, N failed, N skipped" line;
// exits 0 only when nothing failed. The whole run is bounded to 60 s.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const MODES = {
    legacy: { sdk: 2, protocol: '2025-11-25' },
    2026: { sdk: 2, protocol: '2026-07-28' },
    v1: { sdk: 1, protocol: '2025-11-25' }
};
const TOOL_NAMES = ['ask', 'check', 'inbox', 'relay_to_human', 'respond', 'wait_for_messages', 'withdraw'];
const RUN_TIMEOUT_MS = 60_000;
const CALL_TIMEOUT_MS = 30_000;

const modeName = process.argv[2];
const mode = MODES[modeName];
const { LH_URL, LH_ADMIN_TOKEN } = process.env;
if (!mode || !LH_URL || !LH_ADMIN_TOKEN) {
    console.error(`usage: LH_URL=... LH_ADMIN_TOKEN=... node flows.mjs <legacy|2026|v1>`);
    process.exit(2);
}
const MCP_URL = new URL('/mcp', LH_URL);
const RUN_ID = randomBytes(4).toString('hex');
const agentName = who => `ts-${who}-${RUN_ID}`;

setTimeout(() => {
    console.log(`FAIL run: not finished after ${RUN_TIMEOUT_MS / 1000} s`);
    process.exit(1);
}, RUN_TIMEOUT_MS).unref();

// ---------------------------------------------------------------------------
// Step bookkeeping

const tally = { passed: 0, failed: 0, skipped: 0 };
const transportErrors = [];

async function step(label, body) {
    transportErrors.length = 0;
    const started = performance.now();
    try {
        const note = await body();
        const ms = Math.round(performance.now() - started);
        console.log(`ok   ${label} (${ms} ms)${note ? ` — ${note}` : ''}`);
        tally.passed++;
        return true;
    } catch (error) {
        console.log(`FAIL ${label}: ${describe(error)}`);
        for (const line of transportErrors.splice(0)) console.log(`     transport: ${line}`);
        tally.failed++;
        return false;
    }
}

function skip(label, reason) {
    console.log(`skip ${label} — ${reason}`);
    tally.skipped++;
}

/** One line: SDK errors can carry multi-line zod issue dumps. */
function describe(error) {
    const status = error?.status ?? error?.code;
    const cause = error?.cause?.code ?? error?.cause?.message;
    const text = `${error?.message ?? error}${status !== undefined ? ` [${status}]` : ''}${cause ? ` (${cause})` : ''}`.replace(/\s+/g, ' ');
    return text.length > 600 ? `${text.slice(0, 600)}…` : text;
}

// ---------------------------------------------------------------------------
// Plain HTTP: token minting, the REST API, and raw MCP posts

async function http(method, path, token, body) {
    const response = await fetch(new URL(path, LH_URL), {
        method,
        headers: {
            ...(token && { authorization: `Bearer ${token}` }),
            ...(body !== undefined && { 'content-type': 'application/json' })
        },
        body: body === undefined ? undefined : JSON.stringify(body)
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

async function mintToken(agent) {
    const { status, body } = await http('POST', '/v1/tokens', LH_ADMIN_TOKEN, { agent });
    assert.equal(status, 201, `POST /v1/tokens for ${agent} → ${status}`);
    assert.equal(typeof body?.token, 'string', 'token response carries no token');
    return body.token;
}

function rawMcpPost(message, headers = {}) {
    return fetch(MCP_URL, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        body: JSON.stringify(message)
    });
}

/** The first message this mode's client sends: `initialize` (2025) or `server/discover` (2026). */
function handshakeMessage() {
    const clientInfo = { name: 'lighthouse-flows-raw', version: '1.0.0' };
    if (mode.protocol === '2026-07-28') {
        return {
            jsonrpc: '2.0',
            id: 1,
            method: 'server/discover',
            params: {
                _meta: {
                    'io.modelcontextprotocol/protocolVersion': mode.protocol,
                    'io.modelcontextprotocol/clientInfo': clientInfo,
                    'io.modelcontextprotocol/clientCapabilities': {}
                }
            }
        };
    }
    return { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: mode.protocol, capabilities: {}, clientInfo } };
}

// ---------------------------------------------------------------------------
// SDK clients. `elicit` (optional) answers elicitation/create and declares the capability.

async function connect(who, token, elicit) {
    const info = { name: `lighthouse-flows-${who}`, version: '1.0.0' };
    const requestInit = { headers: token ? { Authorization: `Bearer ${token}` } : {} };
    let client;
    let transport;
    if (mode.sdk === 1) {
        // `elicitation: {}` is the pre-2025-11-25 spelling (form mode implied) that older hosts still send.
        transport = new V1Transport(MCP_URL, { requestInit });
        client = new V1Client(info, { capabilities: elicit ? { elicitation: {} } : {} });
        if (elicit) client.setRequestHandler(ElicitRequestSchema, request => elicit(request.params));
    } else {
        transport = new StreamableHTTPClientTransport(MCP_URL, { requestInit });
        client = new Client(info, {
            capabilities: elicit ? { elicitation: { form: {} } } : {},
            ...(mode.protocol === '2026-07-28' && { versionNegotiation: { mode: { pin: mode.protocol } } })
        });
        if (elicit) client.setRequestHandler('elicitation/create', request => elicit(request.params));
    }
    client.onerror = error => transportErrors.push(`${who}: ${describe(error)}`);
    await client.connect(transport, { timeout: 10_000 });

    const protocol = mode.sdk === 1 ? transport.protocolVersion : client.getNegotiatedProtocolVersion();
    return {
        who,
        client,
        transport,
        protocol,
        server: client.getServerVersion(),
        async toolNames() {
            const { tools } = await client.listTools();
            return tools.map(tool => tool.name).sort();
        },
        call(name, args) {
            const params = { name, arguments: args };
            const options = { timeout: CALL_TIMEOUT_MS };
            return mode.sdk === 1 ? client.callTool(params, undefined, options) : client.callTool(params, options);
        },
        close: () => client.close()
    };
}

/** The structuredContent of a successful tool result. */
function structured(result, tool) {
    assert.ok(!result.isError, `${tool} returned isError: ${result.content?.[0]?.text ?? JSON.stringify(result.structuredContent)}`);
    assert.ok(result.structuredContent, `${tool} returned no structuredContent`);
    return result.structuredContent;
}

function assertRequest(elicitation, expected, what) {
    for (const [key, value] of Object.entries(expected)) {
        assert.deepEqual(elicitation?.[key], value, `${what}: ${key} is ${JSON.stringify(elicitation?.[key])}, expected ${JSON.stringify(value)}`);
    }
}

// ---------------------------------------------------------------------------
// Flows

const ANSWER_SCHEMA = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
const APPROVE_SCHEMA = { type: 'object', properties: { approve: { type: 'boolean' } }, required: ['approve'] };
const NESTED_SCHEMA = {
    type: 'object',
    properties: { address: { type: 'object', properties: { street: { type: 'string' } } } }
};

const names = { alice: agentName('alice'), bob: agentName('bob'), carol: agentName('carol') };
const tokens = {};
const clients = {};
let carolsAsk; // created in step 8, withdrawn in step 9
const humanPrompts = []; // what bob's "human" was shown, via elicitation/create

console.log(`mode ${modeName}: SDK ${mode.sdk === 1 ? '@modelcontextprotocol/sdk 1.x' : '@modelcontextprotocol/client 2.x'}, ${MCP_URL}, run ${RUN_ID}`);

const connected = await step('1 connect alice and bob; tools/list lists the 7 tools', async () => {
    tokens.alice = await mintToken(names.alice);
    tokens.bob = await mintToken(names.bob);
    clients.alice = await connect('alice', tokens.alice);
    clients.bob = await connect('bob', tokens.bob, async params => {
        humanPrompts.push(params);
        return { action: 'accept', content: { approve: true } };
    });
    for (const c of [clients.alice, clients.bob]) {
        assert.equal(c.protocol, mode.protocol, `${c.who} negotiated ${c.protocol}`);
        assert.deepEqual(await c.toolNames(), TOOL_NAMES, `${c.who}'s tools/list`);
    }
    const server = clients.alice.server;
    return `protocol ${clients.alice.protocol}, server ${server ? `${server.name} ${server.version}` : 'unnamed'}`;
});
if (!connected) await finish();

await step('2 round trip: ask (waitSeconds) ‖ inbox (waitSeconds) → respond → ask returns accepted', async () => {
    const message = `Round trip ${RUN_ID}: what is the answer?`;
    const started = performance.now();
    const asking = clients.alice
        .call('ask', { to: names.bob, message, requestedSchema: ANSWER_SCHEMA, waitSeconds: 20 })
        .then(result => ({ asked: structured(result, 'ask'), ms: Math.round(performance.now() - started) }));
    const answering = (async () => {
        const inbox = structured(await clients.bob.call('inbox', { waitSeconds: 20 }), 'inbox');
        const request = inbox.items.find(item => item.message === message);
        assert.ok(request, `bob's inbox does not hold alice's request (${inbox.items.length} items)`);
        assertRequest(request, { from: names.alice, to: names.bob, status: 'pending' }, 'inbox item');
        const responded = structured(await clients.bob.call('respond', { id: request.id, action: 'accept', content: { answer: 'yes' } }), 'respond');
        assertRequest(responded, { id: request.id, status: 'accepted' }, 'respond');
        return request.id;
    })();
    const [{ asked, ms }, id] = await Promise.all([asking, answering]);
    assertRequest(asked, { id, from: names.alice, to: names.bob, status: 'accepted' }, 'ask');
    assertRequest(asked.response, { action: 'accept', content: { answer: 'yes' } }, 'ask response');
    return `round trip ${ms} ms`;
});

await step('3 relay_to_human: bob relays alice\'s request to his human via elicitation/create', async () => {
    const message = `Relay ${RUN_ID}: approve the deploy?`;
    const asked = structured(await clients.alice.call('ask', { to: names.bob, message, requestedSchema: APPROVE_SCHEMA }), 'ask');
    assertRequest(asked, { status: 'pending' }, 'ask without wait');

    const relay = structured(await clients.bob.call('relay_to_human', { id: asked.id, waitSeconds: 20 }), 'relay_to_human');
    const prompt = humanPrompts.find(params => params.message === message);
    assert.ok(prompt, `bob's elicitation handler never saw the message (saw ${humanPrompts.length} prompts)`);
    assert.equal(prompt.mode ?? 'form', 'form', 'elicitation mode');
    assert.deepEqual(prompt.requestedSchema, APPROVE_SCHEMA, 'the human was shown another schema');
    const relayed = relay.relayed?.find(item => item.id === asked.id);
    assert.ok(relayed, 'relay_to_human did not report the relayed request');
    assertRequest(relayed, { status: 'accepted' }, 'relayed');
    assertRequest(relayed.response, { action: 'accept', content: { approve: true } }, 'relayed response');

    const checked = structured(await clients.alice.call('check', { id: asked.id }), 'check');
    assertRequest(checked, { status: 'accepted' }, 'check');
    assertRequest(checked.response, { action: 'accept', content: { approve: true } }, 'check response');
    return mode.protocol === '2026-07-28' ? 'answered through input_required' : 'answered over the tools/call SSE stream';
});

await step('4 relay_to_human from a client without the elicitation capability → isError', async () => {
    tokens.carol = await mintToken(names.carol);
    clients.carol = await connect('carol', tokens.carol);
    const asked = structured(await clients.alice.call('ask', { to: names.carol, message: `No human ${RUN_ID}`, requestedSchema: APPROVE_SCHEMA }), 'ask');
    const result = await clients.carol.call('relay_to_human', { id: asked.id, waitSeconds: 5 });
    assert.equal(result.isError, true, `relay_to_human without the capability returned ${JSON.stringify(result.structuredContent)}`);
    const checked = structured(await clients.alice.call('check', { id: asked.id }), 'check');
    assertRequest(checked, { status: 'pending' }, 'the request after the failed relay');
});

await step('5 ask with a schema outside the elicitation subset → isError, 422 problem', async () => {
    const result = await clients.alice.call('ask', { to: names.bob, message: `Nested ${RUN_ID}`, requestedSchema: NESTED_SCHEMA });
    assert.equal(result.isError, true, 'a nested object property was accepted');
    const problem = result.structuredContent;
    assert.equal(problem?.status, 422, `problem status ${problem?.status}`);
    assert.equal(typeof problem.title, 'string', 'problem has no title');
    const pointers = (problem.errors ?? []).map(error => error.pointer);
    assert.ok(pointers.some(pointer => pointer?.startsWith('/requestedSchema')), `no /requestedSchema pointer in ${JSON.stringify(pointers)}`);
    return pointers.join(', ');
});

await step('6 unauthenticated: connecting without a token fails; a raw POST gets 401 + WWW-Authenticate: Bearer', async () => {
    const refused = await connect('anonymous', undefined).then(
        c => (c.close(), undefined),
        error => error
    );
    assert.ok(refused, 'a client without a token connected');
    const response = await rawMcpPost(handshakeMessage());
    await response.body?.cancel();
    assert.equal(response.status, 401, `raw ${handshakeMessage().method} without Authorization`);
    const challenge = response.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer\b/i, `WWW-Authenticate is "${challenge}"`);
    return `client refused: ${describe(refused)}`;
});

if (mode.protocol === '2026-07-28') {
    skip('7 expired session', `2026-07-28 is sessionless (client session id: ${clients.bob.transport.sessionId ?? 'none'})`);
} else {
    await step('7 expired session: after DELETE the session id gets 404; a bogus one too', async () => {
        const { transport, protocol } = clients.bob;
        const sessionId = transport.sessionId;
        assert.ok(sessionId, 'the server issued no MCP-Session-Id');
        await transport.terminateSession();
        assert.equal(transport.sessionId, undefined, 'the transport still holds the session after DELETE');
        const listTools = { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} };
        const headers = { authorization: `Bearer ${tokens.bob}`, 'mcp-protocol-version': protocol };
        for (const id of [sessionId, 'bogus']) {
            const response = await rawMcpPost(listTools, { ...headers, 'mcp-session-id': id });
            await response.body?.cancel();
            assert.equal(response.status, 404, `tools/list with ${id === 'bogus' ? 'a bogus' : 'the deleted'} session id → ${response.status}`);
        }
    });
}

await step('8 interop: HTTP API ↔ MCP', async () => {
    const viaHttp = await http('POST', '/v1/elicitations', tokens.alice, { to: names.carol, message: `Over HTTP ${RUN_ID}`, requestedSchema: ANSWER_SCHEMA });
    assert.equal(viaHttp.status, 201, `POST /v1/elicitations → ${viaHttp.status}`);
    const inbox = structured(await clients.carol.call('inbox', {}), 'inbox');
    const seen = inbox.items.find(item => item.id === viaHttp.body.id);
    assert.ok(seen, 'the HTTP-created request is not in carol\'s MCP inbox');
    assertRequest(seen, { from: names.alice, status: 'pending' }, 'MCP inbox item');

    const viaMcp = structured(await clients.carol.call('ask', { to: names.alice, message: `Over MCP ${RUN_ID}`, requestedSchema: ANSWER_SCHEMA }), 'ask');
    const list = await http('GET', `/v1/agents/${encodeURIComponent(names.alice)}/elicitations?role=inbox&status=pending`, tokens.alice);
    assert.equal(list.status, 200, `GET alice's inbox → ${list.status}`);
    const listed = list.body.items.find(item => item.id === viaMcp.id);
    assert.ok(listed, 'the MCP ask is not in alice\'s HTTP inbox');
    assertRequest(listed, { from: names.carol, to: names.alice, status: 'pending' }, 'HTTP inbox item');

    const fetched = await http('GET', `/v1/elicitations/${encodeURIComponent(viaMcp.id)}`, tokens.carol);
    assert.equal(fetched.status, 200, `GET /v1/elicitations/<id> → ${fetched.status}`);
    assertRequest(fetched.body, { id: viaMcp.id, message: `Over MCP ${RUN_ID}` }, 'HTTP fetch of the MCP ask');
    carolsAsk = viaMcp.id;
});

await step('9 withdraw: the asker withdraws → withdrawn, gone from the recipient\'s inbox', async () => {
    assert.ok(carolsAsk, 'step 8 created no request to withdraw');
    const withdrawn = structured(await clients.carol.call('withdraw', { id: carolsAsk }), 'withdraw');
    assertRequest(withdrawn, { id: carolsAsk, status: 'withdrawn' }, 'withdraw');
    const list = await http('GET', `/v1/agents/${encodeURIComponent(names.alice)}/elicitations?role=inbox&status=pending`, tokens.alice);
    assert.equal(list.status, 200, `GET alice's inbox → ${list.status}`);
    assert.ok(!list.body.items.some(item => item.id === carolsAsk), 'the withdrawn request is still pending in alice\'s inbox');
});

await finish();

async function finish() {
    // Sessionless transports and already-terminated sessions make terminateSession a no-op.
    await Promise.allSettled(Object.values(clients).map(c => c.transport.terminateSession().finally(() => c.close())));
    console.log(`${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
    process.exit(tally.failed === 0 ? 0 : 1);
}
