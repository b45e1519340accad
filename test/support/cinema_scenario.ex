defmodule ElixirScope.CinemaScenario do
  @moduledoc """
  A small bank run, reported through the runtime API the way instrumented code
  reports it: an account GenServer (state before/after each callback, a captured
  owner string that is an XSS attempt), a teller process sending it requests,
  a recursive interest computation with locals and expressions, a spawned
  auditor, and a withdrawal that crashes the account.

  `run(recorder)` takes the reporting module (`ElixirScope.Capture.InstrumentationRuntime`).
  """

  @xss "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss=2\">"

  @doc "The captured string that must be shown as text."
  def xss, do: @xss

  @doc "Runs the scenario; returns the pids involved."
  def run(r \\ ElixirScope.Capture.InstrumentationRuntime) do
    {:ok, account} = ElixirScope.CinemaScenario.Account.start(r, @xss)
    parent = self()

    teller =
      spawn(fn ->
        Process.put(:es_recorder, r)
        cid = r.report_function_entry(ElixirScope.CinemaScenario.Teller, :run, [account], __ENV__.line)
        auditor = spawn(fn -> auditor(r) end)
        r.report_spawn(auditor)

        for op <- [{:deposit, 50}, {:deposit, 25}, {:withdraw, 30}, :balance] do
          request(r, account, op)
          Process.sleep(2)
        end

        years = 4
        interest = compound(r, 145.0, 0.05, years)
        sid = r.report_message_send(auditor, {:audit, interest})
        send(auditor, {:audit, interest, sid})
        Process.sleep(2)

        result =
          try do
            request(r, account, {:withdraw, 500})
          catch
            :exit, reason -> {:crashed, reason}
          end

        r.report_function_exit(cid, result)
        send(parent, {:teller_done, self(), auditor})
      end)

    receive do
      {:teller_done, ^teller, auditor} ->
        Process.sleep(5)
        %{account: account, teller: teller, auditor: auditor}
    after
      5_000 -> raise "scenario timed out"
    end
  end

  defp request(r, account, op) do
    cid = r.report_function_entry(ElixirScope.CinemaScenario.Teller, :request, [op], __ENV__.line)
    sid = r.report_message_send(account, op)
    reply = GenServer.call(account, {:traced, sid, op})
    r.report_function_exit(cid, reply)
    reply
  end

  defp compound(r, amount, rate, 0) do
    cid = r.report_function_entry(ElixirScope.CinemaScenario.Interest, :compound, [amount, rate, 0], __ENV__.line)
    r.report_function_exit(cid, amount)
    amount
  end

  defp compound(r, amount, rate, years) do
    cid = r.report_function_entry(ElixirScope.CinemaScenario.Interest, :compound, [amount, rate, years], __ENV__.line)
    grown = Float.round(amount * (1 + rate), 2)
    r.report_expression_value(cid, "Float.round(amount * (1 + rate), 2)", grown, __ENV__.line)
    r.report_local_variable_snapshot(cid, %{amount: amount, rate: rate, years: years, grown: grown}, __ENV__.line)
    result = compound(r, grown, rate, years - 1)
    r.report_function_exit(cid, result)
    result
  end

  defp auditor(r) do
    receive do
      {:audit, amount, sid} ->
        r.report_message_receive({:audit, amount}, sid)
        cid = r.report_function_entry(ElixirScope.CinemaScenario.Auditor, :check, [amount], __ENV__.line)
        r.report_function_exit(cid, if(amount > 0, do: :ok, else: :suspicious))
    after
      2_000 -> :ok
    end
  end

  defmodule Account do
    @moduledoc "The demo's account GenServer, reporting its state around each callback."
    use GenServer

    def start(r, owner), do: GenServer.start(__MODULE__, {r, owner})

    @impl true
    def init({r, owner}) do
      Process.put(:es_recorder, r)
      cid = r.report_function_entry(__MODULE__, :init, [owner], __ENV__.line)
      state = %{owner: owner, balance: 100, history: []}
      r.report_state_change(cid, :after, state, __ENV__.line)
      r.report_function_exit(cid, {:ok, state})
      {:ok, state}
    end

    @impl true
    def handle_call({:traced, sid, op}, from, state) do
      r = Process.get(:es_recorder)
      r.report_message_receive(op, sid)
      cid = r.report_function_entry(__MODULE__, :handle_call, [op, from, state], __ENV__.line)
      r.report_state_change(cid, :before, state, __ENV__.line)

      try do
        {:reply, reply, new_state} = apply_op(r, cid, op, state)
        r.report_state_change(cid, :after, new_state, __ENV__.line)
        r.report_function_exit(cid, {:reply, reply, new_state})
        {:reply, reply, new_state}
      rescue
        e ->
          r.report_error(cid, :error, e, __STACKTRACE__)
          reraise e, __STACKTRACE__
      end
    end

    @impl true
    def terminate(reason, _state) do
      Process.get(:es_recorder).report_process_exit(reason)
      :ok
    end

    defp apply_op(r, cid, {:deposit, n}, state) do
      balance = state.balance + n
      r.report_expression_value(cid, "state.balance + n", balance, __ENV__.line)
      {:reply, {:ok, balance}, %{state | balance: balance, history: [{:deposit, n} | state.history]}}
    end

    defp apply_op(r, cid, {:withdraw, n}, state) do
      r.report_local_variable_snapshot(cid, %{n: n, balance: state.balance}, __ENV__.line)

      if n > state.balance do
        raise ArgumentError, "insufficient funds: balance #{state.balance}, asked #{n}"
      end

      balance = state.balance - n
      {:reply, {:ok, balance}, %{state | balance: balance, history: [{:withdraw, n} | state.history]}}
    end

    defp apply_op(_r, _cid, :balance, state), do: {:reply, state.balance, state}
  end
end

defmodule ElixirScope.CinemaScenario.Recording do
  @moduledoc """
  The demo recording: runs the scenario through the real runtime API into the
  native store, saves it with `ElixirScope.Recording.save/3` to `path`, stops
  ElixirScope and loads the file back. Returns `{recording, pids}`.
  """
  alias ElixirScope.CinemaScenario

  def record(path) do
    ElixirScope.stop()
    # a synthetic scenario: it reports its spawns and exits by hand
    :ok = ElixirScope.start(capture: [lifecycle: false])
    pids = CinemaScenario.run(ElixirScope.Capture.InstrumentationRuntime)
    {:ok, _} = ElixirScope.Recording.save(path)
    ElixirScope.stop()
    {:ok, rec} = ElixirScope.Recording.load(path, default: false)
    {rec, pids}
  end
end
