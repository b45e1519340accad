// ElixirScope's VS Code extension: the debug type `elixir-scope`. A launch runs
// `mix scope.dap` in the workspace folder (the adapter speaks DAP over stdio);
// an attach connects to `iex -S mix scope.dap --port N` running in the app.
'use strict';
const vscode = require('vscode');

const TYPE = 'elixir-scope';

function activate(context) {
  context.subscriptions.push(
    vscode.debug.registerDebugAdapterDescriptorFactory(TYPE, { createDebugAdapterDescriptor: descriptor }),
    vscode.debug.registerDebugConfigurationProvider(TYPE, { resolveDebugConfiguration: resolve })
  );
}

// the adapter: a TCP server for attach, else `mix scope.dap` over stdio
function descriptor(session) {
  const config = session.configuration;
  if (config.request === 'attach') {
    return new vscode.DebugAdapterServer(config.port || 4711, config.host || '127.0.0.1');
  }
  const folder = session.workspaceFolder ? session.workspaceFolder.uri.fsPath : process.cwd();
  // MIX_QUIET: nothing but the protocol may reach stdout, not even "Compiling…"
  const env = { ...process.env, MIX_QUIET: '1', MIX_ENV: config.mixEnv || process.env.MIX_ENV || 'dev' };
  return new vscode.DebugAdapterExecutable('mix', ['scope.dap'], { cwd: folder, env });
}

// F5 without a launch.json: debug the recording the demo writes
function resolve(folder, config) {
  if (!config.type && !config.request && !config.name) {
    config.type = TYPE;
    config.request = 'launch';
    config.name = 'Debug a recording';
    config.recording = '${workspaceFolder}/_build/demo.esrec';
  }
  if (!config.sourceRoot && folder) config.sourceRoot = folder.uri.fsPath;
  if (config.request === 'launch' && !config.recording) {
    return vscode.window.showErrorMessage('ElixirScope: set "recording" to an .esrec file').then(() => undefined);
  }
  return config;
}

function deactivate() {}

module.exports = { activate, deactivate, descriptor, resolve };
