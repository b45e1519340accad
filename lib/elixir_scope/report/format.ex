defmodule ElixirScope.Report.Format.Shown do
  @moduledoc false
  # stands in for a part of a captured value in `ElixirScope.Report.Format.bounded/2`: inspects as its text
  defstruct [:text]

  defimpl Inspect do
    def inspect(%{text: text}, _opts), do: text
  end
end

defmodule ElixirScope.Report.Format do
  @moduledoc """
  Short, readable text for the values of a recording: bounded `inspect`, call lines, exceptions
  (Erlang errors shown as the Elixir exception they become) and state differences.

  `text/2` is the one rendering of a captured value (IEx, the report, the cinema, search and
  the exports all go through it): bounded in time and size whatever the value holds. Huge
  integers are shown abbreviated (`1234…5678 (301030 digits)`), computed from their bits
  without converting them to decimal (which is quadratic on OTP 25: 11 s for `1 <<< 1_000_000`).
  """

  import Bitwise, only: [<<<: 2]
  alias ElixirScope.Recording.Structs
  alias ElixirScope.Report.Format.Shown

  @line_limit 150
  @callbacks [:handle_call, :handle_cast, :handle_info, :handle_continue]
  # integers at or above 2^1024 (309 digits) are abbreviated
  @big 1 <<< 1024
  # at most this many terms are visited by one rendering; the rest shows as `...`
  @max_nodes 10_000
  @max_text 16_384

  @doc "A value, bounded in size."
  @spec value(term()) :: String.t()
  def value(v), do: text(v, limit: 6, printable_limit: 60, width: :infinity)

  @doc """
  A captured value as Elixir text: `inspect/2` with `limit:` (default 50), `printable_limit:`
  (default 4096), `pretty:` and `width:`, at most `max:` bytes (default 16 KB, a cut ends in
  `…`). Visits at most #{@max_nodes} terms and stops adding strings past `max:` bytes (the
  rest shows as `...`); huge integers are abbreviated. Never raises.
  """
  @spec text(term(), keyword()) :: String.t()
  def text(value, opts \\ []) do
    max = Keyword.get(opts, :max, @max_text)
    budget = :counters.new(2, [])

    iopts = [
      limit: Keyword.get(opts, :limit, 50),
      printable_limit: Keyword.get(opts, :printable_limit, 4096),
      pretty: Keyword.get(opts, :pretty, false),
      width: Keyword.get(opts, :width, 80),
      inspect_fun: visitor(budget, max)
    ]

    value |> inspect(iopts) |> cut_bytes(max)
  end

  # counts the terms inspect visits (slot 1) and the string bytes it shows (slot 2)
  defp visitor(budget, max) do
    fn term, opts ->
      :counters.add(budget, 1, 1)

      if :counters.get(budget, 1) > @max_nodes or :counters.get(budget, 2) > max,
        do: "...",
        else: visit(term, opts, budget)
    end
  end

  defp visit(i, _opts, _budget) when is_integer(i) and (i >= @big or i <= -@big), do: big_integer(i)

  defp visit(bin, opts, budget) when is_binary(bin) do
    :counters.add(budget, 2, min(byte_size(bin), opts.printable_limit))
    Inspect.inspect(bin, opts)
  end

  defp visit(term, opts, _budget), do: term(term, opts)

  @doc """
  A huge integer abbreviated: `1234…5678 (301030 digits)`. The leading digits and the count
  come from the top 64 bits and the bit length (a float logarithm; within 1e-9 of a power of
  ten the leading digits are left out and the count marked `≈`), the last four from `rem/2`;
  nothing is converted to decimal in full.
  """
  @spec big_integer(integer()) :: String.t()
  def big_integer(i) when is_integer(i) and (i >= 1 <<< 64 or i <= -(1 <<< 64)) do
    n = abs(i)
    bin = :binary.encode_unsigned(n)
    top = :binary.decode_unsigned(binary_part(bin, 0, 8))
    log = :math.log10(top) + 8 * (byte_size(bin) - 8) * :math.log10(2)
    digits = trunc(log) + 1
    frac = log - trunc(log)
    tail = n |> rem(10_000) |> Integer.to_string() |> String.pad_leading(4, "0")
    sign = if i < 0, do: "-", else: ""

    # next to a power of ten the float cannot tell 10^k - 1 from 10^k: say so rather than guess
    if frac < 1.0e-9 or frac > 1 - 1.0e-9 do
      "#{sign}…#{tail} (≈#{digits} digits)"
    else
      "#{sign}#{min(trunc(:math.pow(10, frac + 3)), 9999)}…#{tail} (#{digits} digits)"
    end
  end

  def big_integer(i) when is_integer(i), do: Integer.to_string(i)

  @doc """
  A copy of a captured term that is safe to hand to formatting this module does not control
  (exception messages, which call `inspect/2` themselves): huge integers replaced by their
  abbreviation, at most `budget` terms kept (the rest replaced by `...`).
  """
  @spec bounded(term(), pos_integer()) :: term()
  def bounded(term, budget \\ 5_000), do: term |> prune(budget) |> elem(0)

  defp prune(_term, 0), do: {%Shown{text: "..."}, 0}
  defp prune(i, n) when is_integer(i) and (i >= @big or i <= -@big), do: {%Shown{text: big_integer(i)}, n - 1}
  defp prune(list, n) when is_list(list), do: prune_list(list, n - 1, [])

  defp prune(tuple, n) when is_tuple(tuple) do
    {items, n} = prune_list(Tuple.to_list(tuple), n - 1, [])
    {List.to_tuple(items), n}
  end

  defp prune(%{__struct__: s} = struct, n) when is_atom(s) do
    {map, n} = prune(Map.delete(struct, :__struct__), n)
    {Map.put(map, :__struct__, s), n}
  end

  defp prune(map, n) when is_map(map) do
    {pairs, n} = prune_pairs(Map.to_list(map), n - 1, [])
    {Map.new(pairs), n}
  end

  defp prune(other, n), do: {other, n - 1}

  defp prune_pairs([], n, acc), do: {acc, n}
  defp prune_pairs(_rest, 0, acc), do: {[{%Shown{text: "..."}, %Shown{text: "..."}} | acc], 0}

  defp prune_pairs([{k, v} | t], n, acc) do
    {k, n} = prune(k, n)
    {v, n} = prune(v, max(n, 1))
    prune_pairs(t, n, [{k, v} | acc])
  end

  defp prune_list([], n, acc), do: {Enum.reverse(acc), n}
  defp prune_list(_rest, 0, acc), do: {Enum.reverse([%Shown{text: "..."} | acc]), 0}

  defp prune_list([h | t], n, acc) do
    {h, n} = prune(h, n)
    prune_list(t, n, [h | acc])
  end

  # an improper tail
  defp prune_list(tail, n, acc) do
    {tail, n} = prune(tail, n)
    {Enum.reverse(acc) ++ tail, n}
  end

  @doc "Cuts `text` to at most `max` bytes on a character boundary, appending `…`."
  @spec cut_bytes(String.t(), pos_integer()) :: String.t()
  def cut_bytes(text, max) when byte_size(text) <= max, do: text
  def cut_bytes(text, max), do: valid_prefix(binary_part(text, 0, max)) <> "…"

  # drops a partial UTF-8 sequence at the end (at most 3 bytes)
  defp valid_prefix(s), do: if(String.valid?(s) or s == "", do: s, else: valid_prefix(binary_part(s, 0, byte_size(s) - 1)))


  @doc """
  The `inspect_fun` of every rendering of a captured value: `Inspect.inspect/2`, except for a
  struct whose module is not loaded (a recording opened without the recorded code): it is
  written as the recorded code would write it, from the definition the recording saved
  (`ElixirScope.Recording.Structs`): `%Demo.Posting{seq: 1, account: "alice", …}` with the
  fields in definition order, or, like `Inspect` does, as a map when its keys are not the
  struct's. A struct no recording defines is written from its `__struct__` key, fields sorted.
  """
  @spec term(term(), Inspect.Opts.t()) :: Inspect.Algebra.t()
  def term(%{__struct__: mod} = map, opts) when is_atom(mod) do
    if struct_module?(mod), do: Inspect.inspect(map, opts), else: unloaded_struct(map, mod, Structs.fields(mod), opts)
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

  defp unloaded_struct(map, mod, nil, opts), do: fields_doc(literal(mod), sorted_fields(map), opts)

  defp unloaded_struct(map, mod, fields, opts) do
    if Enum.sort(fields) == map |> Map.keys() |> List.delete(:__struct__) |> Enum.sort(),
      do: fields_doc(literal(mod), in_order(map, fields), opts),
      else: fields_doc("%{", map |> Map.to_list() |> Enum.sort(), opts)
  end

  defp literal(mod), do: "%" <> Macro.inspect_atom(:literal, mod) <> "{"

  # as Inspect writes a struct: without its __struct__ and __exception__ keys
  defp sorted_fields(map), do: map |> Map.drop([:__struct__, :__exception__]) |> Map.to_list() |> Enum.sort()
  defp in_order(map, fields), do: for(f <- fields, f != :__exception__, do: {f, Map.fetch!(map, f)})

  defp fields_doc(open, pairs, opts) do
    import Inspect.Algebra

    field = fn {k, v}, o ->
      key = if is_atom(k), do: Macro.inspect_atom(:key, k), else: concat(o.inspect_fun.(k, o), " =>")
      concat([key, " ", o.inspect_fun.(v, o)])
    end

    container_doc(open, pairs, "}", opts, field, separator: ",", break: :flex)
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
    # messages of exceptions inspect their fields themselves: hand them a bounded copy
    {reason, stack} = bounded({reason, if(is_list(stack), do: stack, else: [])})

    if kind == :error,
      do: {kind, Exception.normalize(:error, reason, stack), stack},
      else: {kind, reason, stack}
  end

  def exception(other), do: {:error, bounded(other), []}

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
