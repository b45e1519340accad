defmodule ElixirScope.Compiler.SettingsTest do
  use ExUnit.Case, async: false

  alias ElixirScope.Compiler.Settings

  setup do
    previous = Application.get_env(:elixir_scope, :ast)

    on_exit(fn ->
      if previous,
        do: Application.put_env(:elixir_scope, :ast, previous),
        else: Application.delete_env(:elixir_scope, :ast)
    end)

    tmp = Path.join(System.tmp_dir!(), "es_settings_#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)
    %{tmp: tmp}
  end

  defp load(ast, plan_text, tmp) do
    plan_file = Path.join(tmp, "plan.exs")
    if plan_text, do: File.write!(plan_file, plan_text), else: File.rm(plan_file)
    Application.put_env(:elixir_scope, :ast, Keyword.put(ast, :plan_file, plan_file))
    Settings.load([])
  end

  test "precedence: exclude, plan module, include, default; instrument_macros", %{tmp: tmp} do
    plan =
      "%{version: 1, default_level: :locals, modules: %{App.B => %{level: :expressions}, App.C => %{}}}"

    {:ok, s} =
      load(
        [
          default_instrumentation_level: :full,
          include: [App],
          exclude: [App.Secret],
          instrument_macros: true
        ],
        plan,
        tmp
      )

    assert Settings.module_plan(s, App.B) == %{level: :expressions, macros: true}
    assert Settings.module_plan(s, App.C) == %{level: :full, macros: true}
    assert Settings.module_plan(s, App.Secret.Keys) == %{level: :none}
    assert Settings.module_plan(s, Other) == %{level: :none}
    assert Settings.module_plan(s, App.Web) == %{level: :full, macros: true}
    assert Settings.matches?(App.Web.Live, ["App.Web"])
    refute Settings.matches?(App.Webhooks, [App.Web])
    assert s.plan_file =~ "plan.exs"
  end

  test "the plan's default level applies when the config sets none", %{tmp: tmp} do
    {:ok, s} = load([], "%{version: 1, default_level: :locals}", tmp)
    assert Settings.module_plan(s, Any) == %{level: :locals}
    {:ok, s} = load([], nil, tmp)
    assert Settings.module_plan(s, Any) == %{level: :function_boundaries}
  end

  test "instruments_every_module?: only when no module can be at :none", %{tmp: tmp} do
    every = fn ast, plan ->
      {:ok, s} = load(ast, plan, tmp)
      Settings.instruments_every_module?(s)
    end

    assert every.([default_instrumentation_level: :full], nil)
    assert every.([], "%{version: 1, modules: %{App.B => %{level: :locals}}}")
    refute every.([default_instrumentation_level: :none], nil)
    refute every.([default_instrumentation_level: :full, include: [App]], nil)
    refute every.([default_instrumentation_level: :full, exclude: [App.Secret]], nil)

    refute every.(
             [default_instrumentation_level: :full],
             "%{version: 1, modules: %{App.B => %{level: :none}}}"
           )
  end

  test "bad configuration names the problem", %{tmp: tmp} do
    assert {:error, msg} = load([default_instrumentation_level: :max], nil, tmp)
    assert msg =~ ":max"
    assert {:error, msg} = load([colour: :red], nil, tmp)
    assert msg =~ ":colour"
    assert {:error, msg} = load([], "%{version: 1, modules: %{App => %{level: :loud}}}", tmp)
    assert msg =~ ":loud"
    assert {:error, msg} = load([], "[:not, :a, :map]", tmp)
    assert msg =~ "plan.exs"
    assert {:error, msg} = load([], "%{oops", tmp)
    assert msg =~ "plan.exs"
  end
end
