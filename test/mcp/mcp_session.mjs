// Drives `mix scope.mcp RECORDING` (stdio) with the official MCP TypeScript SDK
// client: lists the tools and calls each on the demo recording. Run by
// test/elixir_scope/mcp_client_test.exs, which computes the expected answers
// from the recording with ElixirScope.Query and passes them as JSON (argv[2]).
// Prints one JSON line {"ok": true, "checks": [...]} or exits with code 1.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import assert from 'node:assert/strict';

const cfg = JSON.parse(process.argv[2]);
const checks = [];
const check = (name, fn) => { fn(); checks.push(name); };

const transport = new StdioClientTransport({
  command: 'mix', args: ['scope.mcp', cfg.recording], cwd: cfg.cwd,
  env: { ...process.env, MIX_QUIET: '1' }, stderr: 'inherit',
});
const client = new Client({ name: 'elixir-scope-test', version: '1.0.0' });

// a tool call's structured result (the text content is the same JSON)
async function call(name, args) {
  const r = await client.callTool({ name, arguments: args });
  assert.equal(r.isError, false, `${name} failed: ${JSON.stringify(r.content)}`);
  assert.deepEqual(JSON.parse(r.content[0].text), r.structuredContent);
  return r.structuredContent;
}

try {
  await client.connect(transport);
  check('initialize negotiates the current protocol revision', () => {
    assert.equal(client.getServerVersion().name, 'elixir-scope');
    assert.ok(client.getServerCapabilities().tools);
    assert.ok(client.getServerCapabilities().resources);
  });
  check('the SDK speaks the current revision', () => assert.equal(LATEST_PROTOCOL_VERSION, cfg.protocol));

  const tools = (await client.listTools()).tools;
  const names = tools.map((t) => t.name).sort();
  check('lists the ten tools with JSON Schemas', () => {
    assert.deepEqual(names, ['call_tree', 'explain_crash', 'find_events', 'list_processes', 'logpoint', 'origin',
      'search', 'state_at', 'timeline', 'variable_history']);
    for (const t of tools) {
      assert.equal(t.inputSchema.type, 'object');
      assert.ok(t.description.length > 20);
    }
  });

  // list_processes, two pages
  const p1 = await call('list_processes', { limit: 3 });
  const p2 = await call('list_processes', { cursor: p1.next_cursor, limit: 100 });
  check('list_processes pages through every process', () => {
    assert.equal(p1.total, cfg.processes);
    assert.equal(p1.processes.length, 3);
    assert.equal(p1.processes.length + p2.processes.length, cfg.processes);
    assert.equal(p2.next_cursor, null);
    assert.ok([...p1.processes, ...p2.processes].some((p) => p.name === 'Demo.Ledger'));
  });

  const exc = await call('find_events', { kind: 'exception' });
  check('find_events filters by kind', () => assert.deepEqual(exc.events.map((e) => e.id), cfg.exceptions));
  const led1 = await call('find_events', { pid: 'Demo.Ledger', kind: ['state'], limit: 2 });
  const led2 = await call('find_events', { pid: 'Demo.Ledger', kind: ['state'], limit: 2, cursor: led1.next_cursor });
  check('find_events pages by cursor', () => {
    assert.deepEqual([...led1.events, ...led2.events].map((e) => e.id), cfg.ledgerStates.slice(0, 4));
  });

  const tree = await call('call_tree', { pid: cfg.scorer, depth: 2, limit: 10 });
  check('call_tree shows risk/2 under handle_call/3, with the crash', () => {
    const crashed = tree.calls.find((c) => c.call_id === cfg.crashHandleCall);
    assert.equal(crashed.status, 'exception');
    assert.match(crashed.result, /ArithmeticError/);
    assert.equal(crashed.children[0].function, 'Demo.RiskScorer.risk/2');
  });

  const state = await call('state_at', { pid: 'Demo.Ledger' });
  check('state_at gives the latest state of the ledger', () => {
    for (const [account, balance] of Object.entries(cfg.balances)) assert.match(state.state, new RegExp(`"${account}" => ${balance}`));
  });

  const hist = await call('variable_history', { pid: cfg.scorer, name: 'total' });
  check('variable_history lists the values of total', () => assert.deepEqual(hist.values.map((v) => v.value), cfg.totals));

  const origin = await call('origin', { value: '"carol"', limit: 2 });
  check('origin finds the first event holding "carol"', () => {
    assert.equal(origin.first.id, cfg.carolFirst);
    assert.equal(origin.holders.length, 2);
    assert.ok(origin.next_cursor);
  });

  const lp = await call('logpoint', { function: 'Demo.RiskScorer.risk/2', expression: '{amount, length(history), result}' });
  check('logpoint evaluates over every recorded call', () => {
    assert.equal(lp.hits.length, cfg.riskCalls);
    assert.equal(lp.hits[lp.hits.length - 1].value, '{700, 0, nil}');
  });

  const ex = await call('explain_crash', {});
  check('explain_crash explains the ArithmeticError with total = 0', () => {
    assert.match(ex.exception, /ArithmeticError/);
    assert.equal(ex.locals.total, '0');
    assert.ok(ex.call_chain.includes('Demo.RiskScorer.risk/2'));
    assert.ok(ex.suggested_fix.length > 0);
  });

  const found = await call('search', { query: 'kind:exception badarith' });
  check('search finds the exception events', () => assert.deepEqual(found.events.map((e) => e.id), cfg.exceptions));

  const tl = await call('timeline', { pids: [cfg.caller, 'Demo.Ledger'], limit: 40 });
  check('timeline merges two processes with the messages between them', () => {
    const ids = tl.events.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.ok(tl.messages.length > 0);
    assert.ok(tl.next_cursor);
  });

  // tool errors are results with isError, the server goes on
  const bad = await client.callTool({ name: 'state_at', arguments: { pid: '<9.9.9>' } });
  check('an unknown process is a tool error', () => { assert.equal(bad.isError, true); assert.match(bad.content[0].text, /no recorded process/); });
  const invalid = await client.callTool({ name: 'find_events', arguments: { limit: 'ten' } });
  check('arguments outside the schema are a tool error', () => { assert.equal(invalid.isError, true); assert.match(invalid.content[0].text, /limit must be an integer/); });
  const unknown = await client.callTool({ name: 'no_such_tool', arguments: {} }).then(() => null, (e) => e);
  check('an unknown tool is a protocol error', () => assert.match(String(unknown), /Unknown tool/));

  const res = (await client.listResources()).resources;
  const summary = await client.readResource({ uri: res[0].uri });
  check('the recording summary is a resource', () => {
    assert.equal(res[0].uri, 'elixir-scope://recording/summary');
    const s = JSON.parse(summary.contents[0].text);
    assert.equal(s.events, cfg.events);
    assert.equal(s.processes, cfg.processes);
  });

  await client.ping();
  await client.close();
  console.log(JSON.stringify({ ok: true, checks }));
} catch (e) {
  await client.close().catch(() => {});
  console.log(JSON.stringify({ ok: false, checks, error: String(e && e.stack || e) }));
  process.exit(1);
}
