defmodule ElixirScope.Capture.KeyLeakTest do
  # The LLM API key given to ElixirScope never appears in clear: not in SASL progress,
  # supervisor or crash reports (at start and at every restart), not in a child spec, a
  # process state, the session info, or a configuration error.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.Capture.{AsyncWriterPool, Owner, Session}
  alias ElixirScope.Config

  @moduletag :capture_log
  @key "sk-LEAKCHECK-0123456789abcdef"

  # A :logger handler that keeps every event, both formatted and as the raw term.
  defmodule Collector do
    @moduledoc false
    def log(event, %{config: %{pid: pid}}) do
      text =
        try do
          event |> :logger_formatter.format(%{single_line: false, template: [:msg]}) |> IO.chardata_to_string()
        rescue
          _ -> ""
        end

      send(pid, {:logged, text <> "\n" <> inspect(event, limit: :infinity, printable_limit: :infinity)})
    end
  end

  setup do
    primary = :logger.get_primary_config()
    :ok = :logger.set_primary_config(:level, :all)
    :ok = :logger.add_handler(:key_leak_collector, Collector, %{level: :all, config: %{pid: self()}})
    previous = Application.get_env(:logger, :handle_sasl_reports)
    Application.put_env(:logger, :handle_sasl_reports, true)

    on_exit(fn ->
      :logger.remove_handler(:key_leak_collector)
      :logger.set_primary_config(:level, primary.level)
      if previous == nil, do: Application.delete_env(:logger, :handle_sasl_reports), else: Application.put_env(:logger, :handle_sasl_reports, previous)
    end)

    :ok
  end

  defp logged(acc \\ []) do
    receive do
      {:logged, text} -> logged([text | acc])
    after
      200 -> Enum.reverse(acc)
    end
  end

  defp kill(name) do
    if pid = Process.whereis(name) do
      ref = Process.monitor(pid)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, _, _, _}, 5_000
    end
  end

  defp await(name) do
    Enum.find(1..500, fn _ -> Process.whereis(name) || (Process.sleep(10) && nil) end)
  end

  defp refute_key(what, term) do
    text = if is_binary(term), do: term, else: inspect(term, limit: :infinity, printable_limit: :infinity, structs: false)
    refute text =~ @key, "the key is visible in #{what}"
    refute :erlang.term_to_binary(term) =~ @key, "the key's bytes are in #{what}"
  end

  test "started, restarted, inspected: the key is never in clear" do
    start_scope!(ai: [api_key: @key, llm_provider: :gemini], capture: [fuse: [enabled: false]])
    refute_key("Session.info()", Session.info())
    refute_key("the owner's child spec", Supervisor.which_children(ElixirScope.AppSupervisor))
    refute_key(":sys.get_state(ElixirScope.AppSupervisor)", :sys.get_state(ElixirScope.AppSupervisor))
    refute_key(":sys.get_state(Owner)", :sys.get_state(Owner))
    refute_key(":sys.get_state(ElixirScope.Supervisor)", :sys.get_state(ElixirScope.Supervisor))
    refute_key(":sys.get_state(Session)", :sys.get_state(Session))
    refute_key("ElixirScope.status()", ElixirScope.status())

    # every kind of restart, each with its SASL reports
    kill(Session)
    await(Session)
    Enum.each(AsyncWriterPool.writers(), &Process.exit(&1, :kill))
    kill(ElixirScope.Supervisor)
    await(ElixirScope.Supervisor)
    kill(Owner)
    await(Owner)
    await(ElixirScope.Supervisor)
    refute_key(":sys.get_state(Owner) after a restart", :sys.get_state(Owner))

    reports = logged()
    assert Enum.any?(reports, &(&1 =~ "ElixirScope.Capture.Owner")), "no SASL report was collected"
    for r <- reports, do: refute_key("a log event", r)
  end

  test "in a user's supervision tree: the child spec holds the key wrapped" do
    ElixirScope.stop()
    spec = ElixirScope.child_spec(ai: [api_key: @key])
    refute_key("ElixirScope.child_spec/1", spec)
    {:ok, sup} = Supervisor.start_link([{ElixirScope, ai: [api_key: @key]}], strategy: :one_for_one)
    refute_key(":sys.get_state(user supervisor)", :sys.get_state(sup))
    kill(Owner)
    await(Owner)
    Supervisor.stop(sup)
    for r <- logged(), do: refute_key("a log event", r)
  end

  test "configuration errors never echo the key" do
    for bad <- [
          [ai: [{:api_key, @key}, :junk]],
          [ai: @key],
          [ai: [@key]],
          [{:ai, [api_key: @key]}, :junk],
          [ai: [api_key: String.to_charlist(@key)]],
          [ai: [api_key: {@key}]],
          {:ai, @key},
          [capture: :bad, ai: [api_key: @key]]
        ] do
      assert {:error, msg} = Config.validate(bad)
      refute_key("the error for #{inspect(bad, limit: 2)}", msg)
      assert {:error, msg} = ElixirScope.start(bad)
      refute_key("the start error", msg)
    end

    {:ok, config} = Config.validate(ai: [api_key: @key])
    refute_key("a validated configuration", config)
    assert ElixirScope.AI.LLM.Secret.reveal(config[:ai][:api_key]) == @key
  end
end
