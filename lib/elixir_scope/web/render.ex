defmodule ElixirScope.Web.Render do
  @moduledoc """
  Turns recorded terms into bounded text for the cinema and the exports: values
  through the one formatter of captured values (`ElixirScope.Report.Format.text/2`,
  cut to a byte budget, the cut marked), pids as `<0.123.0>`, calls as
  `Mod.fun/arity`. Never raises.
  """

  alias ElixirScope.{Event, Truncated}
  alias ElixirScope.Report.Format

  @max_bytes 16_384

  @doc "A value as Elixir source-like text, at most `max` bytes (`…` marks a cut); see `ElixirScope.Report.Format.text/2`."
  @spec term(term(), keyword()) :: String.t()
  def term(value, opts \\ []) do
    Format.text(value,
      max: Keyword.get(opts, :max, @max_bytes),
      limit: Keyword.get(opts, :limit, 100),
      printable_limit: Keyword.get(opts, :max, @max_bytes),
      pretty: Keyword.get(opts, :pretty, true),
      width: 80
    )
  end

  @doc "A short one-line rendering (for lists and tooltips)."
  @spec short(term(), pos_integer()) :: String.t()
  def short(value, max \\ 120), do: term(value, max: max, pretty: false, limit: 12)

  @doc "Cuts `text` to at most `max` bytes on a character boundary, appending `…`."
  @spec cut(String.t(), pos_integer()) :: String.t()
  defdelegate cut(text, max), to: Format, as: :cut_bytes

  @doc "`<0.123.0>` for a pid; other values inspected."
  @spec pid(term()) :: String.t()
  def pid(p) when is_pid(p), do: p |> :erlang.pid_to_list() |> List.to_string()
  def pid(nil), do: "?"
  def pid(other), do: short(other, 80)

  @doc "`Mod.fun/arity` of an event (empty string when it names no function)."
  @spec mfa(Event.t() | {module(), atom(), non_neg_integer() | nil}) :: String.t()
  def mfa(%Event{module: m, function: f, arity: a}), do: mfa({m, f, a})
  def mfa({nil, nil, _}), do: ""
  def mfa({m, f, a}) when a in [nil, 255], do: "#{mod(m)}.#{f}"
  def mfa({m, f, a}), do: "#{mod(m)}.#{f}/#{a}"

  @doc "A module name without the `Elixir.` prefix."
  @spec mod(atom()) :: String.t()
  def mod(nil), do: "?"
  def mod(m) when is_atom(m), do: m |> Atom.to_string() |> String.replace_prefix("Elixir.", "")

  @doc "An exception payload `{kind, reason, stacktrace}` as a banner and stacktrace lines."
  @spec exception(term()) :: %{kind: String.t(), message: String.t(), reason: String.t(), stacktrace: [String.t()]}
  def exception({kind, reason, stack}) do
    # exception messages inspect their fields themselves: format a bounded copy
    {reason, stack} = Format.bounded({reason, if(is_list(stack), do: Enum.filter(stack, &stack_entry?/1), else: [])})

    message =
      try do
        Exception.format_banner(kind, reason, stack)
      rescue
        _ -> "** (#{kind}) " <> short(reason, 400)
      end

    lines =
      Enum.map(stack, fn entry ->
        try do
          Exception.format_stacktrace_entry(entry)
        rescue
          _ -> short(entry, 200)
        end
      end)

    %{kind: to_string(kind), message: cut(message, 4096), reason: term(reason, max: 4096), stacktrace: Enum.take(lines, 50)}
  end

  def exception(other), do: %{kind: "error", message: short(other, 400), reason: term(other), stacktrace: []}

  defp stack_entry?({m, f, a, loc}) when is_atom(m) and is_atom(f) and (is_integer(a) or is_list(a)) and is_list(loc), do: true
  defp stack_entry?({fun, a, loc}) when is_function(fun) and (is_integer(a) or is_list(a)) and is_list(loc), do: true
  defp stack_entry?(_), do: false

  @doc "Whether a value holds a truncation marker anywhere (walks at most a few thousand nodes)."
  @spec truncated?(term()) :: boolean()
  def truncated?(value), do: walk([value], 4000)

  defp walk([], _), do: false
  defp walk(_, 0), do: false
  defp walk([%Truncated{} | _], _), do: true
  defp walk([h | t], n) when is_list(h), do: walk(safe_list(h) ++ t, n - 1)
  defp walk([h | t], n) when is_tuple(h), do: walk(Tuple.to_list(h) ++ t, n - 1)
  defp walk([h | t], n) when is_map(h), do: walk(Enum.flat_map(h, fn {k, v} -> [k, v] end) ++ t, n - 1)
  defp walk([_ | t], n), do: walk(t, n - 1)

  defp safe_list(l), do: safe_list(l, [])
  defp safe_list([h | t], acc), do: safe_list(t, [h | acc])
  defp safe_list([], acc), do: acc
  defp safe_list(tail, acc), do: [tail | acc]
end
