defmodule Demo.MixProject do
  use Mix.Project

  # The demo application of ElixirScope: compiled with the :elixir_scope compiler, so every module
  # of lib/ is instrumented at the level set in config/config.exs (:full).
  def project do
    [
      app: :demo,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:elixir_scope] ++ Mix.compilers(),
      start_permanent: false,
      deps: [{:elixir_scope, path: "../.."}]
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {Demo.Application, []}]
  end
end
