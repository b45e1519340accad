import Config

# What the :elixir_scope compiler instruments: everything in lib/ at :full (function boundaries,
# expressions, locals and GenServer state).
config :elixir_scope, ast: [default_instrumentation_level: :full]

config :logger, level: :warning
