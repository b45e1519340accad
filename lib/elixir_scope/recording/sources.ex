defmodule ElixirScope.Recording.Sources do
  @moduledoc """
  The source lines a recording carries, so that the cinema and IEx show the code around
  an event without the recorded code (or the file it came from) at hand.

  At save time `add/2` notes the lines the events point at and `build/4` reads, for each
  recorded module (loaded in the saving node), its source file (`module_info(:compile)`;
  `.ex`/`.exs`, under 2 MB) and keeps the lines within `source_context` of each recorded
  line, at most 300 bytes each and `max_source_bytes` in all (config `recording:`), a string
  literal given to a secret name replaced (`redact/2`); what the bound leaves out is counted
  (`sources_omitted` in the header). The header holds
  `%{module => %{file: path, lines: %{number => text}}}` (key `sources`), checked by
  `check/1` when a file is loaded.

  `snippet/4` is the one place that answers "the lines around `module`, `line`": from the
  recording when it saved them (they are the code that ran, even if the file changed
  since), else from the file of the module, when it is loaded (`snippet/4` loads nothing)
  and its file lies under the current directory.
  """

  alias ElixirScope.{Event, Recording, Redaction}

  @typedoc """
  Recorded lines so far (`{module, line}`), and the module of each call still open: the
  events inside a call (expressions, locals, state, messages) name their call, not its module.
  """
  @type found :: %{lines: %{optional({module(), pos_integer()}) => true}, open: %{optional(pos_integer()) => module()}}

  @typedoc "What a recording keeps of one module's source."
  @type module_lines :: %{file: String.t(), lines: %{optional(pos_integer()) => String.t()}}

  @typedoc "A window of lines around `line`, from line `from`."
  @type snippet :: %{file: String.t(), line: pos_integer(), from: pos_integer(), lines: [String.t()]}

  @typedoc "Reads a file's lines: `{:ok, shown path, lines tuple}` or `:error`."
  @type reader :: (String.t() -> {:ok, String.t(), tuple()} | :error)

  @max_line_bytes 300
  @max_file_bytes 2_000_000
  @max_modules 10_000
  @max_lines 1_000_000
  @max_path_bytes 4_096
  # the window shown: 3 lines before the line, 2 after
  @lines_before 3
  @lines_after 2

  @doc "Nothing found yet."
  @spec new() :: found()
  def new, do: %{lines: %{}, open: %{}}

  @doc "Adds the lines the events point at, each with the module of its call."
  @spec add(found(), [Event.t()]) :: found()
  def add(found, events), do: Enum.reduce(events, found, &add_event/2)

  @typedoc "What `scan/1` found in one page: its lines and open calls, and the events that name a call of an earlier page."
  @type scanned :: {found(), [Event.t()]}

  @doc """
  `add/2` for one page of events on its own (pages are scanned in parallel): the events
  whose call began in an earlier page are kept for `merge/2`, which adds the pages in order.
  """
  @spec scan([Event.t()]) :: scanned()
  def scan(events) do
    {found, outer} =
      Enum.reduce(events, {new(), []}, fn e, {found, outer} ->
        if e.module == nil and not is_map_key(found.open, e.call_id),
          do: {found, [e | outer]},
          else: {add_event(e, found), outer}
      end)

    {found, Enum.reverse(outer)}
  end

  @doc "Adds a scanned page to what the earlier pages found."
  @spec merge(found(), scanned()) :: found()
  def merge(found, {page, outer}) do
    found = Enum.reduce(outer, found, &add_event/2)
    %{lines: Map.merge(found.lines, page.lines), open: Map.merge(found.open, page.open)}
  end

  defp add_event(%Event{kind: :call, id: id, module: m} = e, found) when is_atom(m) and m != nil,
    do: put_line(%{found | open: Map.put(found.open, id, m)}, m, e.line)

  defp add_event(%Event{kind: kind, call_id: cid} = e, found) when kind in [:return, :exception, :tail_call] do
    m = e.module || found.open[cid]
    put_line(%{found | open: Map.delete(found.open, cid)}, m, Event.source_line(e, m))
  end

  defp add_event(%Event{call_id: cid} = e, found), do: put_line(found, e.module || found.open[cid], e.line)

  defp put_line(found, m, line) when is_atom(m) and m != nil and is_integer(line) and line > 0,
    do: %{found | lines: Map.put(found.lines, {m, line}, true)}

  defp put_line(found, _m, _line), do: found

  @doc """
  The lines to save: `{%{module => module_lines}, omitted}`, within `context` lines of each
  recorded line and `max_bytes` in all; `omitted` counts the lines the bound left out. A
  module whose file cannot be read here keeps the lines `saved` has of it (the sources of
  the recording being saved again).
  """
  @spec build(found(), non_neg_integer(), non_neg_integer(), map()) :: {%{optional(module()) => module_lines()}, non_neg_integer()}
  def build(%{lines: found}, context, max_bytes, saved \\ %{}) do
    found
    |> Map.keys()
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
    |> Enum.sort()
    |> Enum.reduce({%{}, 0, max_bytes}, fn {m, lines}, {acc, omitted, left} ->
      case text_of(m, saved) do
        {:ok, file, line_at} ->
          wanted = lines |> Enum.flat_map(&((&1 - context)..(&1 + context)//1)) |> Enum.uniq() |> Enum.sort() |> Enum.filter(line_at)
          {kept, left} = take(wanted, line_at, left, [])
          acc = if kept == [], do: acc, else: Map.put(acc, m, %{file: file, lines: Map.new(kept)})
          {acc, omitted + length(wanted) - length(kept), left}

        :error ->
          {acc, omitted, left}
      end
    end)
    |> then(fn {acc, omitted, _left} -> {acc, omitted} end)
  end

  # the file and a line lookup (nil past its ends) of a module's source
  defp text_of(m, saved) do
    with {:ok, path} <- compiled_source(m, true),
         {:ok, file, text} <- read_lines(path, nil) do
      {:ok, file, &(&1 >= 1 and &1 <= tuple_size(text) and elem(text, &1 - 1))}
    else
      _ ->
        case saved do
          %{^m => %{file: file, lines: lines}} -> {:ok, file, &Map.get(lines, &1)}
          _ -> :error
        end
    end
  end

  defp take(wanted, line_at, left, acc), do: take(wanted, line_at, left, acc, rules())

  defp take([], _line_at, left, acc, _rules), do: {acc, left}

  defp take([n | rest], line_at, left, acc, rules) do
    line = n |> line_at.() |> shown(rules)
    if byte_size(line) + 8 <= left, do: take(rest, line_at, left - byte_size(line) - 8, [{n, line} | acc], rules), else: {acc, left}
  end

  # the redaction rules the compiler applies to names (the `capture:` config)
  defp rules, do: Redaction.rules(Application.get_env(:elixir_scope, :capture, []))

  # a line as it is saved or shown: cut, and without the string literal given to a secret name
  defp shown(line, rules), do: line |> redact(rules) |> ElixirScope.Report.Format.cut_bytes(@max_line_bytes)

  @literal ~r/([A-Za-z_][A-Za-z0-9_?!]*)("?:\s*|"?\s*=>\s*|\s*=\s*|\s+)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/

  @doc """
  `line` with each string literal given to a secret name (`ElixirScope.Redaction`) replaced by
  `"[REDACTED]"`: `api_key: "sk-…"`, `token = "…"`, `@password "…"`, `"secret" => "…"`.
  Source lines travel with a recording: a key written in the code must not.
  """
  @spec redact(String.t(), Redaction.t()) :: String.t()
  def redact(line, rules) do
    Regex.replace(@literal, line, fn whole, name, sep, _literal ->
      if Redaction.secret_name?(name, rules), do: name <> sep <> ~s("[REDACTED]"), else: whole
    end)
  end

  # the saver loads a recorded module; snippet/4 does not (see ElixirScope.Web.Data.source_snippet/4)
  defp compiled_source(m, load?) do
    with true <- if(load?, do: Code.ensure_loaded?(m), else: function_exported?(m, :module_info, 1)),
         src when is_list(src) <- m.module_info(:compile)[:source] do
      {:ok, List.to_string(src)}
    else
      _ -> :error
    end
  rescue
    _ -> :error
  end

  @doc """
  `{:ok, shown path, lines}` of an `.ex`/`.exs` file under 2 MB; with a `root`, only of a
  file under it (the cinema serves files under the current directory only). The shown
  path is relative to the current directory when the file lies under it.
  """
  @spec read_lines(String.t(), String.t() | nil) :: {:ok, String.t(), tuple()} | :error
  def read_lines(path, root) do
    cwd = File.cwd!()
    expanded = Path.expand(path, cwd)

    with true <- Path.extname(expanded) in [".ex", ".exs"],
         true <- root == nil or String.starts_with?(expanded, Path.expand(root) <> "/"),
         {:ok, %File.Stat{type: :regular, size: size}} when size < @max_file_bytes <- File.stat(expanded),
         {:ok, text} <- File.read(expanded) do
      {:ok, Path.relative_to(expanded, cwd), text |> String.split("\n") |> List.to_tuple()}
    else
      _ -> :error
    end
  end

  @doc """
  The lines around `line` of `module`: those saved with a recording `source`, else those of
  the loaded module's file read by `read` (default: a file under the current directory).
  Nil when neither has them.
  """
  @spec snippet(ElixirScope.Query.Source.t(), module(), non_neg_integer(), reader() | nil) :: snippet() | nil
  def snippet(source, module, line, read \\ nil)

  def snippet(source, m, line, read) when is_atom(m) and m != nil and is_integer(line) and line > 0 do
    saved(source, m, line) || loaded(m, line, read || (&read_lines(&1, File.cwd!())))
  end

  def snippet(_source, _m, _line, _read), do: nil

  defp saved(%Recording{meta: %{sources: %{} = sources}}, m, line) do
    with %{file: file, lines: %{^line => _} = lines} <- Map.get(sources, m) do
      # the saved lines next to `line`, without a gap
      from = reach(lines, line, (line - 1)..max(line - @lines_before, 1)//-1)
      to = reach(lines, line, (line + 1)..(line + @lines_after)//1)
      %{file: file, line: line, from: from, lines: Enum.map(from..to, &Map.fetch!(lines, &1))}
    else
      _ -> nil
    end
  end

  defp saved(_source, _m, _line), do: nil

  defp reach(lines, line, range),
    do: Enum.reduce_while(range, line, fn k, at -> if Map.has_key?(lines, k), do: {:cont, k}, else: {:halt, at} end)

  defp loaded(m, line, read) do
    with {:ok, path} <- compiled_source(m, false),
         {:ok, file, lines} when line <= tuple_size(lines) <- read.(path) do
      from = max(line - @lines_before, 1)
      rules = rules()
      window = for i <- from..min(line + @lines_after, tuple_size(lines))//1, do: shown(elem(lines, i - 1), rules)
      %{file: file, line: line, from: from, lines: window}
    else
      _ -> nil
    end
  end

  @doc "`{:ok, sources}` when `v` is what `build/3` writes (bounded, valid UTF-8), else false."
  @spec check(term()) :: {:ok, map()} | false
  def check(v) when is_map(v) and not is_map_key(v, :__struct__) and map_size(v) <= @max_modules do
    counted =
      Enum.reduce_while(v, 0, fn
        {m, %{file: file, lines: lines} = entry}, n when is_atom(m) and map_size(entry) == 2 and is_map(lines) ->
          if text?(file, @max_path_bytes) and not is_map_key(lines, :__struct__) and n + map_size(lines) <= @max_lines and
               Enum.all?(lines, fn {k, t} -> is_integer(k) and k > 0 and k <= 0xFFFF_FFFF and text?(t, @max_line_bytes + 3) end),
             do: {:cont, n + map_size(lines)},
             else: {:halt, false}

        _, _ ->
          {:halt, false}
      end)

    counted != false && {:ok, v}
  end

  def check(_), do: false

  defp text?(s, max), do: is_binary(s) and byte_size(s) <= max and String.valid?(s)
end
