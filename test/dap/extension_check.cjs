// Loads editors/vscode/extension.js with a stand-in for VS Code's `vscode`
// module (the host API it calls) and checks what the extension registers and
// which adapter it starts. Run by test/elixir_scope/dap_client_test.exs.
'use strict';
const Module = require('module');
const assert = require('node:assert/strict');
const path = require('path');

const registered = {};
class DebugAdapterExecutable { constructor(command, args, options) { Object.assign(this, { command, args, options }); } }
class DebugAdapterServer { constructor(port, host) { Object.assign(this, { port, host }); } }
const host = {
  debug: {
    registerDebugAdapterDescriptorFactory: (type, f) => { registered.factory = [type, f]; return { dispose() {} }; },
    registerDebugConfigurationProvider: (type, p) => { registered.provider = [type, p]; return { dispose() {} }; },
  },
  window: { showErrorMessage: (m) => Promise.resolve(m) },
  DebugAdapterExecutable, DebugAdapterServer,
};
const load = Module._load;
Module._load = (request, ...rest) => (request === 'vscode' ? host : load(request, ...rest));

const root = path.resolve(__dirname, '../..');
const manifest = require(path.join(root, 'editors/vscode/package.json'));
const ext = require(path.join(root, 'editors/vscode', manifest.main));
const context = { subscriptions: [] };
ext.activate(context);

const folder = { uri: { fsPath: '/work/project' } };
const [type, factory] = registered.factory;
assert.equal(type, 'elixir-scope');
assert.equal(manifest.contributes.debuggers[0].type, 'elixir-scope');
assert.equal(context.subscriptions.length, 2);

const launch = factory.createDebugAdapterDescriptor({ workspaceFolder: folder, configuration: { request: 'launch', recording: 'r.esrec' } });
assert.ok(launch instanceof DebugAdapterExecutable);
assert.equal(launch.command, 'mix');
assert.deepEqual(launch.args, ['scope.dap']);
assert.equal(launch.options.cwd, '/work/project');
assert.equal(launch.options.env.MIX_QUIET, '1');

const attach = factory.createDebugAdapterDescriptor({ workspaceFolder: folder, configuration: { request: 'attach', port: 4712 } });
assert.ok(attach instanceof DebugAdapterServer);
assert.equal(attach.port, 4712);

const [, provider] = registered.provider;
const resolved = provider.resolveDebugConfiguration(folder, {});
assert.equal(resolved.type, 'elixir-scope');
assert.equal(resolved.sourceRoot, '/work/project');
console.log(JSON.stringify({ ok: true }));
