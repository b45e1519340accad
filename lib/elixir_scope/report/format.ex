defmodule ElixirScope.Report.Format do
  @moduledoc """
  Short, readable text for the values of a recording: bounded `inspect`, call lines, exceptions
  (Erlang errors shown as the Elixir exception they become) and state differences.
  """

  @line_limit 150
  @callbacks [:handle_call, :handle_cast, :handle_info, :handle_continue]

  @doc "A value, bounded in size."
  @spec value(term()) :: String.t()
  def value(v), do: inspect(v, limit: 6, printable_limit: 60, width: :infinity, inspect_fun: &term/2)

  @doc """
  The `inspect_fun` of every rendering of a captured value: `Inspect.inspect/2`, except that a
  struct whose module is not loaded (a recording opened without the recorded code) is still
  written as a struct, `%Demo.Posting{account: "alice", …}`, from its `__struct__` key.
  """
  @spec term(term(), Inspect.Opts.t()) :: Inspect.Algebra.t()
  def term(%{__struct__: mod} = map, opts) when is_atom(mod) do
    if struct_module?(mod),
      do: Inspect.inspect(map, opts),
      else: unloaded_struct(mod, Map.delete(map, :__struct__), opts)
  end

  def term(term, opts), do: Inspect.inspect(term, opts)

  # loads the module when it is available, so that its own Inspect (which may hide fields) is
  # used; the answer is kept in the process dictionary: a module that is not there is looked
  # for on the code path once per process, not once per value
  defp struct_module?(mod) do
    key = {__MODULE__, :struct_module, mod}

    case Process.get(key) do
      nil ->
        known = Code.ensure_loaded?(mod) and function_exported?(mod, :__struct__, 0)
        Process.put(key, known)
        known

      known ->
        known
    end
  end

  defp unloaded_struct(mod, fields, opts) do
    import Inspect.Algebra
    pairs = fields |> Map.to_list() |> Enum.sort()

    field = fn {k, v}, o ->
      key = if is_atom(k), do: Macro.inspect_atom(:key, k), else: Inspect.inspect(k, o) <> " =>"
      concat([key, " ", o.inspect_fun.(v, o)])
    end

    container_doc("%" <> Macro.inspect_atom(:literal, mod) <> "{", pairs, "}", opts, field, separator: ",", break: :flex)
  end

  @doc "A stacktrace entry as `Mod.fun/arity (file:line)`; a file name cut at capture keeps its start."
  @spec frame(term()) :: String.t()
  def frame({m, f, a, info}) when is_atom(m) and is_atom(f) do
    arity = if is_list(a), do: length(a), else: a
    file = if is_list(info), do: file_text(info[:file])
    where = if file, do: " (#{file}:#{info[:line]})", else: ""
    "#{inspect(m)}.#{f}/#{arity}#{where}"
  end

  def frame(other), do: value(other)

  defp file_text(file) when is_binary(file), do: file

  defp file_text([_ | _] = file) do
    {chars, rest} = Enum.split_while(file, &(is_integer(&1) and &1 in 0..0x10FFFF))
    List.to_string(chars) <> if(rest == [], do: "", else: "…")
  end

  defp file_text(_), do: nil

  @doc "Cuts a line to the line limit, marking the cut."
  @spec cut(String.t(), pos_integer()) :: String.t()
  def cut(text, limit \\ @line_limit) do
    if String.length(text) > limit, do: String.slice(text, 0, limit - 1) <> "…", else: text
  end

  @doc "`Mod.fun(arg, …)` for a `:call` event; `only_first: true` shows the first argument only."
  @spec call(map(), keyword()) :: String.t()
  def call(call, opts \\ [])

  # GenServer callbacks: the message, then `from`/`state` by name (the state section shows state).
  def call(%{module: m, function: f, payload: [msg | rest]}, _opts)
      when f in @callbacks and length(rest) in [1, 2] do
    names = if length(rest) == 2, do: ", from, state", else: ", state"
    "#{inspect(m)}.#{f}(#{value(msg)}#{names})"
  end

  def call(%{module: m, function: f, payload: args}, opts) do
    shown =
      case args do
        [first | rest] when rest != [] ->
          if opts[:only_first], do: value(first) <> ", …", else: args(args)

        list when is_list(list) ->
          args(list)

        other ->
          value(other)
      end

    "#{inspect(m)}.#{f}(#{shown})"
  end

  @doc "Arguments separated by commas."
  @spec args(term()) :: String.t()
  def args(list) when is_list(list), do: Enum.map_join(list, ", ", &value/1)
  def args(other), do: value(other)

  @doc "Variables as `name=value` pairs."
  @spec vars(term()) :: String.t()
  def vars(v) when is_map(v) or is_list(v) do
    Enum.map_join(v, ", ", fn
      {k, x} -> "#{k}=#{value(x)}"
      other -> value(other)
    end)
  end

  def vars(v), do: value(v)

  @doc "An exception payload `{kind, reason, stacktrace}` normalized (`:badarith` -> ArithmeticError)."
  @spec exception({atom(), term(), term()} | term()) :: {atom(), term(), list()}
  def exception({kind, reason, stack}) do
    stack = if is_list(stack), do: stack, else: []

    if kind == :error,
      do: {kind, Exception.normalize(:error, reason, stack), stack},
      else: {kind, reason, stack}
  end

  def exception(other), do: {:error, other, []}

  @doc "One line for an exception payload."
  @spec exception_line(term()) :: String.t()
  def exception_line(payload) do
    case exception(payload) do
      {:error, %{__exception__: true} = e, _} ->
        "#{inspect(e.__struct__)}: #{message(e)}"

      {kind, reason, _} ->
        "#{kind} #{value(reason)}"
    end
  end

  # an exception of a module that is not loaded (a recording opened without its code) has no
  # message/1 to call: its :message field, else its fields
  defp message(%{__struct__: mod} = e) do
    if Code.ensure_loaded?(mod) and function_exported?(mod, :message, 1) do
      Exception.message(e)
    else
      case e do
        %{message: m} when is_binary(m) -> m
        _ -> e |> Map.drop([:__struct__, :__exception__]) |> value()
      end
    end
  end

  @doc "What changed between two states: per key for maps, nested one level, list growth as items."
  @spec state_diff(term(), term()) :: String.t()
  def state_diff(nil, s), do: "state: " <> value(s)

  def state_diff(s, nil),
    do: "state before: " <> value(s) <> " (no state after: the callback did not return)"

  def state_diff(same, same), do: "state unchanged"

  def state_diff(a, b) do
    case diff([], a, b, 0) do
      [] -> "state unchanged"
      changes -> Enum.join(changes, "; ")
    end
  end

  defp diff(path, %{} = a, %{} = b, depth)
       when depth < 2 and not is_struct(a) and not is_struct(b) do
    (Map.keys(a) ++ Map.keys(b))
    |> Enum.uniq()
    |> Enum.sort()
    |> Enum.flat_map(fn k ->
      case {Map.fetch(a, k), Map.fetch(b, k)} do
        {same, same} -> []
        {:error, {:ok, v}} -> ["#{show_path(path ++ [k])} added #{value(v)}"]
        {{:ok, _}, :error} -> ["#{show_path(path ++ [k])} removed"]
        {{:ok, x}, {:ok, y}} -> diff(path ++ [k], x, y, depth + 1)
      end
    end)
  end

  defp diff(path, a, b, _depth) when is_list(a) and is_list(b) and length(b) > length(a) do
    added = length(b) - length(a)

    cond do
      Enum.drop(b, added) == a ->
        ["#{show_path(path)} +#{added}: #{b |> Enum.take(added) |> args()}"]

      Enum.take(b, length(a)) == a ->
        ["#{show_path(path)} +#{added}: #{b |> Enum.drop(length(a)) |> args()}"]

      true ->
        ["#{show_path(path)}: #{value(a)} ⇒ #{value(b)}"]
    end
  end

  defp diff(path, a, b, _depth), do: ["#{show_path(path)}: #{value(a)} ⇒ #{value(b)}"]

  defp show_path([]), do: "state"

  defp show_path([first | rest]) do
    Enum.reduce(rest, key(first), fn k, acc -> acc <> "[#{value(k)}]" end)
  end

  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: value(k)
end
