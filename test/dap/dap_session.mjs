// Drives `mix scope.dap` (over stdio, as an editor starts it) with VS Code's own
// debug adapter test client on the demo recording. Run by
// test/elixir_scope/dap_client_test.exs, which computes the expected event ids
// from the recording with ElixirScope.Query and passes them as JSON (argv[2]).
// Prints one JSON line {"ok": true, "checks": [...]} or throws (exit code 1).
import { DebugClient } from '@vscode/debugadapter-testsupport';
import assert from 'node:assert/strict';

const cfg = JSON.parse(process.argv[2]);
const checks = [];
const check = (name, fn) => { fn(); checks.push(name); };

const dc = new DebugClient('mix', 'scope.dap', 'elixir-scope',
  { cwd: cfg.cwd, env: { ...process.env, MIX_QUIET: '1' } }, true);
dc.defaultTimeout = 60000;

const outputs = [];
dc.on('output', (e) => outputs.push(e.body));

// performs a request that moves the cursor; resolves with the `stopped` event
async function move(request) {
  const stopped = dc.waitForEvent('stopped');
  await request();
  return stopped;
}

async function topFrame(threadId) {
  const st = await dc.stackTraceRequest({ threadId });
  return st.body.stackFrames[0];
}

async function scopeVars(frameId) {
  const scopes = (await dc.scopesRequest({ frameId })).body.scopes;
  const out = {};
  for (const s of scopes) {
    out[s.name] = { ref: s.variablesReference, vars: {} };
    if (s.variablesReference > 0) {
      for (const v of (await dc.variablesRequest({ variablesReference: s.variablesReference })).body.variables) {
        out[s.name].vars[v.name] = v;
      }
    }
  }
  return out;
}

try {
  await dc.start();
  const init = await dc.initializeRequest();
  check('capabilities', () => {
    for (const cap of ['supportsStepBack', 'supportsConfigurationDoneRequest', 'supportsFunctionBreakpoints',
      'supportsConditionalBreakpoints', 'supportsHitConditionalBreakpoints', 'supportsLogPoints',
      'supportsDataBreakpoints', 'supportsEvaluateForHovers', 'supportsGotoTargetsRequest', 'supportsRestartFrame']) {
      assert.equal(init.body[cap], true, cap);
    }
    assert.deepEqual(init.body.exceptionBreakpointFilters.map((f) => f.filter), ['raised', 'crashed']);
  });

  await Promise.all([dc.waitForEvent('initialized'), dc.launchRequest({ recording: cfg.recording, sourceRoot: cfg.sourceRoot })]);

  const bp = await dc.setBreakpointsRequest({ source: { path: cfg.riskFile }, breakpoints: [{ line: 29 }] });
  check('breakpoint at risk_scorer.ex:29 verified', () => assert.equal(bp.body.breakpoints[0].verified, true));

  const entry = await move(() => dc.configurationDoneRequest());
  check('stops on entry', () => assert.equal(entry.body.reason, 'entry'));

  // the first visit of line 29: the risk of a transfer with a history
  let stopped = await move(() => dc.continueRequest({ threadId: entry.body.threadId }));
  const scorer = stopped.body.threadId;
  let frame = await topFrame(scorer);
  let vars = await scopeVars(frame.id);
  check('continue stops at line 29 of risk_scorer.ex', () => {
    assert.equal(stopped.body.reason, 'breakpoint');
    assert.match(stopped.body.description, new RegExp(`#${cfg.firstHit}\\b`));
    assert.equal(frame.line, 29);
    assert.ok(frame.source.path.endsWith('lib/demo/risk_scorer.ex'), frame.source.path);
    assert.equal(frame.name, 'Demo.RiskScorer.risk/2');
    assert.notEqual(vars.Locals.vars.total.value, '0');
  });

  // a condition over the arguments (named from the source): the crashing call
  await dc.setBreakpointsRequest({ source: { path: cfg.riskFile }, breakpoints: [{ line: 29, condition: 'history == []' }] });
  stopped = await move(() => dc.continueRequest({ threadId: scorer }));
  frame = await topFrame(stopped.body.threadId);
  vars = await scopeVars(frame.id);
  check('continue stops on the crashing call with total = 0 in Locals', () => {
    assert.equal(stopped.body.reason, 'breakpoint');
    assert.equal(stopped.body.threadId, scorer);
    assert.match(stopped.body.description, new RegExp(`#${cfg.crash}\\b`));
    assert.equal(frame.line, 29);
    assert.equal(vars.Locals.vars.total.value, '0');
    assert.equal(vars.Arguments.vars.amount.value, '700');
    assert.equal(vars.Arguments.vars.history.value, '[]');
    assert.ok(vars.Exception, 'an Exception scope at the crash');
  });

  const ev = await dc.evaluateRequest({ expression: 'total + 1', frameId: frame.id, context: 'repl' });
  check('evaluate total + 1 answers 1', () => assert.equal(ev.body.result, '1'));

  const refused = await dc.evaluateRequest({ expression: 'System.halt()', frameId: frame.id }).then(() => null, (e) => e);
  check('evaluate refuses calls outside pure modules', () => assert.match(String(refused), /not allowed/));

  const info = await dc.exceptionInfoRequest({ threadId: scorer });
  check('exceptionInfo names the ArithmeticError', () => assert.equal(info.body.exceptionId, 'ArithmeticError'));

  stopped = await move(() => dc.stepBackRequest({ threadId: scorer }));
  frame = await topFrame(scorer);
  check('stepBack lands on the previous event of that process', () => {
    assert.equal(stopped.body.reason, 'step');
    assert.equal(stopped.body.threadId, scorer);
    assert.match(stopped.body.description, new RegExp(`#${cfg.previous}\\b`));
    assert.equal(frame.line, 28);
  });

  // a data breakpoint on the ledger's balances, found through its GenServer state scope
  const threads = (await dc.threadsRequest()).body.threads;
  const ledger = threads.find((t) => t.name.startsWith('Demo.Ledger <'));
  check('threads are the recorded processes, named', () => {
    assert.ok(ledger, JSON.stringify(threads));
    assert.equal(threads.length, cfg.processes);
  });
  const ledgerFrame = await topFrame(ledger.id);
  const ledgerScopes = await scopeVars(ledgerFrame.id);
  const stateScope = Object.entries(ledgerScopes).find(([name]) => name.startsWith('GenServer state'));
  check('the idle ledger shows its GenServer state', () => assert.ok(stateScope && stateScope[1].vars.balances));
  const info2 = await dc.dataBreakpointInfoRequest({ variablesReference: stateScope[1].ref, name: 'balances' });
  check('dataBreakpointInfo gives an id for state.balances', () => assert.ok(info2.body.dataId));
  await dc.setBreakpointsRequest({ source: { path: cfg.riskFile }, breakpoints: [] });
  const dbp = await dc.setDataBreakpointsRequest({ breakpoints: [{ dataId: info2.body.dataId, accessType: 'write' }] });
  check('data breakpoint verified', () => assert.equal(dbp.body.breakpoints[0].verified, true));

  stopped = await move(() => dc.reverseContinueRequest({ threadId: scorer }));
  frame = await topFrame(stopped.body.threadId);
  vars = await scopeVars(frame.id);
  check('reverseContinue stops at the last change of balances', () => {
    assert.equal(stopped.body.reason, 'data breakpoint');
    assert.equal(stopped.body.threadId, ledger.id);
    assert.match(stopped.body.description, new RegExp(`#${cfg.ledgerChange}\\b`));
    const before = vars['GenServer state (before)'].vars.balances.value;
    const after = vars['GenServer state (after)'].vars.balances.value;
    assert.notEqual(before, after);
  });

  // forwards again with the data breakpoint: the next change, or the end of the recording
  stopped = await move(() => dc.continueRequest({ threadId: ledger.id }));
  check('continue goes on to the next change of balances', () => {
    if (cfg.ledgerNext) {
      assert.equal(stopped.body.reason, 'data breakpoint');
      assert.match(stopped.body.description, new RegExp(`#${cfg.ledgerNext}\\b`));
    } else {
      assert.match(stopped.body.description, /end of the recording/);
    }
  });
  await dc.setDataBreakpointsRequest({ breakpoints: [] });

  // a function breakpoint with a hit condition: the third call of risk/2 is the crashing one
  stopped = await move(() => dc.gotoRequest({ threadId: ledger.id, targetId: 1 }));
  check('goto event #1', () => assert.equal(stopped.body.reason, 'goto'));
  await dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'Demo.RiskScorer.risk/2', hitCondition: '3' }] });
  stopped = await move(() => dc.continueRequest({ threadId: ledger.id }));
  check('function breakpoint with hit condition 3', () => {
    assert.equal(stopped.body.reason, 'function breakpoint');
    assert.match(stopped.body.description, new RegExp(`#${cfg.crashCall}\\b`));
  });
  await dc.setFunctionBreakpointsRequest({ breakpoints: [] });

  // the crash as an exception breakpoint, then back to the frame's entry
  stopped = await move(async () => {
    await dc.setExceptionBreakpointsRequest({ filters: ['crashed'] });
    await dc.continueRequest({ threadId: scorer });
  });
  check('the crashed filter stops where the exception was raised', () => {
    assert.equal(stopped.body.reason, 'exception');
    assert.match(stopped.body.description, new RegExp(`#${cfg.crash}\\b`));
  });
  frame = await topFrame(scorer);
  stopped = await move(() => dc.restartFrameRequest({ frameId: frame.id }));
  check('restartFrame goes back to the call', () => assert.match(stopped.body.description, new RegExp(`#${cfg.crashCall}\\b`)));

  const targets = await dc.gotoTargetsRequest({ source: { path: cfg.riskFile }, line: 28 });
  check('gotoTargets lists every visit of line 28', () => assert.equal(targets.body.targets.length, cfg.riskCalls));

  // a logpoint prints over every recorded hit, after the fact
  const before = outputs.length;
  await dc.setBreakpointsRequest({ source: { path: cfg.ledgerFile }, breakpoints: [{ line: 121, logMessage: 'posting to {account}' }] });
  const logs = outputs.slice(before).filter((o) => /posting to/.test(o.output));
  check('a logpoint prints once per recorded hit', () => {
    assert.equal(logs.length, cfg.posts);
    assert.match(logs[0].output, /posting to alice/);
  });

  await dc.stop();
  console.log(JSON.stringify({ ok: true, checks }));
} catch (e) {
  dc.stopAdapter();
  console.log(JSON.stringify({ ok: false, checks, error: String(e && e.stack || e) }));
  process.exit(1);
}
