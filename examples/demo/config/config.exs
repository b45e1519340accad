import Config

# What the :elixir_scope compiler instruments: every module of lib/ at :full (function boundaries,
# expressions, locals and GenServer state), except the script that drives the scenario.
config :elixir_scope, ast: [default_instrumentation_level: :full, exclude: [Demo.Scenario]]

config :logger, level: :warning
