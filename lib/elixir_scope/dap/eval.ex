defmodule ElixirScope.DAP.Eval do
  @moduledoc """
  Evaluates an Elixir expression over captured bindings (a frame's arguments
  and locals, a logpoint's hit) in the debugger's own VM — never in the
  recorded system, which may not even be running.

  Bounded: the expression runs in a fresh process with a time limit
  (default 1 s) and a heap limit, whose group leader captures any output (so
  that nothing reaches a protocol written on standard output).
  Expressions are for reading recorded values: only pure modules may be
  called (`Enum`, `Map`, `String`, `Kernel` without `send`/`spawn`/`exit`/
  `apply`…, `:math`, `:lists`…), since a recorded pid or port means another
  process in this VM. Used by the DAP server (evaluate, conditions,
  logpoints) and the MCP server (`logpoint`).
  """

  @default_timeout 1_000
  # words (8 bytes each): 64 MiB
  @max_heap 8 * 1024 * 1024

  @pure_modules [Enum, Map, MapSet, List, Keyword, String, Integer, Float, Tuple, Access, Kernel, Bitwise,
                 Range, Stream, Date, Time, DateTime, NaiveDateTime, Regex, URI, Base, Atom, Inspect,
                 :math, :lists, :maps, :string, :binary, :unicode, :proplists, :orddict, :ordsets, :queue, :sets]

  @unsafe_kernel [:send, :spawn, :spawn_link, :spawn_monitor, :exit, :apply, :receive, :import, :require,
                  :alias, :use, :defmodule, :def, :defp, :defmacro, :defmacrop, :defdelegate, :defstruct,
                  :defexception, :defprotocol, :defimpl, :quote, :unquote, :unquote_splicing, :super,
                  :__CALLER__, :__ENV__, :binding, :node, :self, :make_ref, :function_exported?,
                  :macro_exported?, :struct, :struct!, :dbg]

  # pure, but they allocate off the process heap (where the heap limit does not see)
  @unbounded [{String, :duplicate}, {String, :pad_leading}, {String, :pad_trailing}, {:binary, :copy}]

  @type result :: {:ok, term(), String.t()} | {:error, String.t()}

  @doc """
  Evaluates `source` with `bindings` (`[{atom, value}]` or a map). Returns
  `{:ok, value, output}` or `{:error, message}` (syntax error, a call that is
  not allowed, an exception, the time or memory limit). Options: `timeout:` (ms).
  """
  @spec eval(String.t(), [{atom(), term()}] | map(), keyword()) :: result()
  def eval(source, bindings, opts \\ []) when is_binary(source), do: hd(eval_many(source, [bindings], opts))

  @doc """
  Evaluates `source` once for each set of bindings (a breakpoint's condition at
  each hit): parsed and checked once, run one after the other in one process,
  each within `timeout:`. Returns one result per set, in order.
  """
  @spec eval_many(String.t(), [[{atom(), term()}] | map()], keyword()) :: [result()]
  def eval_many(source, bindings_list, opts \\ []) when is_binary(source) do
    with {:ok, ast} <- parse(source), :ok <- check(ast) do
      run(ast, Enum.map(bindings_list, &Enum.to_list/1), Keyword.get(opts, :timeout, @default_timeout), [])
    else
      error -> Enum.map(bindings_list, fn _ -> error end)
    end
  end

  # a name that is neither given nor bound by the expression itself: say so before the
  # compiler reads it as a function call (and warns on stderr)
  defp bound(ast, bindings) do
    given = MapSet.new(bindings, &elem(&1, 0))

    {_, patterns} =
      Macro.prewalk(ast, MapSet.new(), fn
        {op, _, [left, _]} = node, acc when op in [:=, :<-, :->] -> {node, MapSet.union(acc, vars(left))}
        node, acc -> {node, acc}
      end)

    case ast |> vars() |> Enum.find(&(not MapSet.member?(given, &1) and not MapSet.member?(patterns, &1))) do
      nil -> :ok
      name -> {:error, "#{name} is not bound here#{known(given)}"}
    end
  end

  defp vars(ast) do
    {_, acc} =
      Macro.prewalk(ast, MapSet.new(), fn
        {name, _, ctx} = node, acc when is_atom(name) and is_atom(ctx) ->
          if String.starts_with?(Atom.to_string(name), "_"), do: {node, acc}, else: {node, MapSet.put(acc, name)}

        node, acc ->
          {node, acc}
      end)

    acc
  end

  defp known(given) do
    case given |> Enum.map(&Atom.to_string/1) |> Enum.sort() do
      [] -> " (nothing is bound)"
      names -> " (bound: #{Enum.join(Enum.take(names, 30), ", ")})"
    end
  end

  @doc "Parses `source`, refusing it when longer than 10,000 bytes."
  @spec parse(String.t()) :: {:ok, Macro.t()} | {:error, String.t()}
  def parse(source) when byte_size(source) > 10_000, do: {:error, "the expression is longer than 10,000 bytes"}

  def parse(source) do
    case Code.string_to_quoted(source, static_atoms_encoder: &atom/2) do
      {:ok, ast} -> {:ok, ast}
      {:error, {_, "not defined here" <> _, name}} -> {:error, "#{name} is not defined here"}
      {:error, {meta, msg, token}} -> {:error, "syntax error#{line(meta)}: #{format_msg(msg)}#{token}"}
    end
  end

  # Input never fills the atom table: a name must exist already (a name no code ever
  # used cannot name a binding either), or be the alias of a loaded module (`Stream`).
  defp atom(text, _meta) do
    {:ok, String.to_existing_atom(text)}
  rescue
    ArgumentError ->
      if module_alias?(text), do: {:ok, String.to_atom(text)}, else: {:error, "not defined here"}
  end

  defp module_alias?(text) do
    String.match?(text, ~r/^[A-Z]\w*$/) and is_atom(String.to_existing_atom("Elixir." <> text))
  rescue
    ArgumentError -> false
  end

  defp line(meta), do: if(meta[:line], do: " on line #{meta[:line]}", else: "")

  defp format_msg({a, b}), do: "#{a}#{b}"
  defp format_msg(m), do: to_string(m)

  @doc "`:ok` when `ast` only calls pure functions, else `{:error, message}`."
  @spec check(Macro.t()) :: :ok | {:error, String.t()}
  def check(ast) do
    {_, bad} = Macro.prewalk(ast, nil, fn node, bad -> {node, bad || refusal(node)} end)
    if bad, do: {:error, bad}, else: :ok
  end

  # remote calls: Mod.fun(...) / :mod.fun(...)
  defp refusal({{:., _, [mod, fun]}, meta, args}) when is_atom(fun) and is_list(args) do
    case module(mod) do
      {:ok, Kernel} when fun in @unsafe_kernel -> "Kernel.#{fun} is not allowed in an evaluated expression"
      {:ok, m} when {m, fun} in @unbounded -> "#{inspect(m)}.#{fun} is not allowed (its result is not bounded)"
      {:ok, m} -> if m in @pure_modules, do: nil, else: "#{inspect(m)}.#{fun} is not allowed (only pure modules such as Enum, Map, String may be called)"
      :variable -> if meta[:no_parens] && args == [], do: nil, else: "calling a function held in a value is not allowed"
      :expression -> "calling a function of a computed module is not allowed"
    end
  end

  # fun.(args)
  defp refusal({{:., _, [_fun]}, _, args}) when is_list(args), do: "calling a function held in a value is not allowed"
  defp refusal({name, _, args}) when name in @unsafe_kernel and is_list(args), do: "#{name} is not allowed in an evaluated expression"
  # &send/2
  defp refusal({:&, _, [{:/, _, [{name, _, ctx}, _]}]}) when name in @unsafe_kernel and is_atom(ctx),
    do: "#{name} is not allowed in an evaluated expression"

  defp refusal(_), do: nil

  defp module({:__aliases__, _, parts}) when is_list(parts) do
    if Enum.all?(parts, &is_atom/1), do: {:ok, Module.concat(parts)}, else: :expression
  end

  defp module(m) when is_atom(m), do: {:ok, m}
  defp module({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: :variable
  defp module(_), do: :expression

  # one worker evaluates the sets in turn; one that overruns its time or heap is
  # reported and a new worker goes on with the rest
  defp run(_ast, [], _timeout, acc), do: Enum.reverse(acc)

  defp run(ast, list, timeout, acc) do
    parent = self()
    ref = make_ref()
    {pid, mon} = spawn_monitor(fn -> worker(parent, ref, ast, list) end)
    collect(ast, list, timeout, acc, {pid, mon, ref})
  end

  defp collect(_ast, [], _timeout, acc, {_pid, mon, _ref}) do
    Process.demonitor(mon, [:flush])
    Enum.reverse(acc)
  end

  defp collect(ast, [_ | rest] = list, timeout, acc, {pid, mon, ref} = w) do
    receive do
      {^ref, result} ->
        collect(ast, rest, timeout, [result | acc], w)

      {:DOWN, ^mon, :process, ^pid, :killed} ->
        msg = "the expression used more than #{div(@max_heap * 8, 1024 * 1024)} MiB and was stopped"
        run(ast, rest, timeout, [{:error, msg} | acc])

      {:DOWN, ^mon, :process, ^pid, reason} ->
        run(ast, rest, timeout, [{:error, "the evaluation ended: #{inspect(reason, limit: 20)}"} | acc])
    after
      timeout ->
        Process.exit(pid, :kill)
        Process.demonitor(mon, [:flush])
        _ = list
        run(ast, rest, timeout, [{:error, "the expression did not finish within #{timeout} ms and was stopped"} | acc])
    end
  end

  defp worker(parent, ref, ast, list) do
    Process.flag(:max_heap_size, %{size: @max_heap, kill: true, error_logger: false})
    {:ok, io} = StringIO.open("")
    Process.group_leader(self(), io)

    Enum.each(list, fn bindings ->
      result =
        with :ok <- bound(ast, bindings) do
          try do
            {value, _} = Code.eval_quoted(ast, bindings)
            {:ok, value, StringIO.flush(io)}
          rescue
            e -> {:error, Exception.message(e)}
          catch
            kind, value -> {:error, "#{kind}: #{inspect(value, limit: 20)}"}
          end
        end

      send(parent, {ref, result})
    end)
  end

  @doc """
  Interpolates a DAP log message: each `{expression}` is evaluated with
  `bindings` and rendered; `{{` and `}}` stand for literal braces.
  """
  @spec interpolate(String.t(), [{atom(), term()}] | map(), keyword()) :: String.t()
  def interpolate(message, bindings, opts \\ []) do
    Regex.replace(~r/\{\{|\}\}|\{([^{}]*)\}/, message, fn
      "{{", _ -> "{"
      "}}", _ -> "}"
      _, expr ->
        case eval(expr, bindings, opts) do
          {:ok, value, _} when is_binary(value) -> value
          {:ok, value, _} -> ElixirScope.Web.Render.short(value, 2_000)
          {:error, msg} -> "{#{expr}: #{msg}}"
        end
    end)
  end
end
