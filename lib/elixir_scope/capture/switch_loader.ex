defmodule ElixirScope.Capture.SwitchLoader do
  @moduledoc """
  Regenerates and hot-loads `ElixirScope.Capture.Switch`: recording on or off,
  with a list of modules that are always off. Called by the session owner
  only, so loads never race.
  """

  @switch ElixirScope.Capture.Switch

  @doc "Loads `Switch.on?/1` answering `on` for every module except `off_modules` (always `false`)."
  @spec set(boolean(), [module()]) :: :ok
  def set(on, off_modules) when is_boolean(on) and is_list(off_modules) do
    line = 1

    clauses =
      Enum.map(Enum.uniq(off_modules), fn m -> {:clause, line, [{:atom, line, m}], [], [{:atom, line, false}]} end) ++
        [{:clause, line, [{:var, line, :_}], [], [{:atom, line, on}]}]

    forms = [
      {:attribute, line, :module, @switch},
      {:attribute, line, :export, [{:on?, 1}]},
      {:function, line, :on?, 1, clauses}
    ]

    {:ok, @switch, binary} = :compile.forms(forms, [:binary, :return_errors])
    purge_old(200)
    {:module, @switch} = :code.load_binary(@switch, ~c"elixir_scope_switch (generated)", binary)
    :ok
  end

  # A process scheduled out inside the old on?/1 holds the old code for a moment;
  # a soft purge waits for it instead of killing it.
  defp purge_old(0), do: :code.purge(@switch)

  defp purge_old(tries) do
    if :code.soft_purge(@switch), do: true, else: (Process.sleep(1); purge_old(tries - 1))
  end
end
