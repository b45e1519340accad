defmodule Fidelity.JSON.Macros do
  @moduledoc """
  The byte-dispatch macros of the decoders' hot loops (as Jason's `bytecase`): each expands to a
  `case` over the next byte, with `rest` bound to the bytes after it.
  """

  @doc """
  `byte_case bin do ?x -> ...; b when guard -> ...; :eof -> ...; _ -> ... end`: a byte pattern
  matches the first byte (and binds `rest`), `:eof` the empty binary, `_` anything.
  """
  defmacro byte_case(bin, do: clauses) do
    quote do
      case unquote(bin) do
        unquote(Enum.map(clauses, &byte_clause/1))
      end
    end
  end

  @doc "`matched` when `bin` starts with `byte` (with `rest` bound), else `other`."
  defmacro on_byte(bin, byte, matched, other) do
    rest = rest_var(matched)

    quote do
      case unquote(bin) do
        <<unquote(byte), unquote(rest)::binary>> -> unquote(matched)
        _ -> unquote(other)
      end
    end
  end

  @doc "`expect bin, byte, do: matched, else: other`: `on_byte/4` with keywords."
  defmacro expect(bin, byte, clauses) do
    quote do
      Fidelity.JSON.Macros.on_byte(
        unquote(bin),
        unquote(byte),
        unquote(clauses[:do]),
        unquote(clauses[:else])
      )
    end
  end

  defguard is_ws(b) when b in [?\s, ?\t, ?\n, ?\r]

  defp byte_clause({:->, meta, [[pattern], body]}),
    do: {:->, meta, [[byte_pattern(pattern, rest_var(body))], body]}

  defp byte_pattern({:when, m, [p, guard]}, rest), do: {:when, m, [byte_pattern(p, rest), guard]}
  defp byte_pattern(:eof, _rest), do: ""
  defp byte_pattern({:_, _, ctx} = any, _rest) when is_atom(ctx), do: any
  defp byte_pattern(p, rest), do: quote(do: <<unquote(p), unquote(rest)::binary>>)

  # `rest` only where the clause uses it, so the caller gets no unused-variable warning
  defp rest_var(body) do
    {_, used?} =
      Macro.prewalk(body, false, fn
        {:rest, _, ctx} = v, _ when is_atom(ctx) -> {v, true}
        other, acc -> {other, acc}
      end)

    if used?, do: Macro.var(:rest, nil), else: Macro.var(:_, nil)
  end
end

defmodule Fidelity.JSON.DecodeError do
  @moduledoc "Raised by `Fidelity.JSON.decode!/2`."
  defexception [:position, :token, :data]

  @impl true
  def message(%{position: pos, token: :eof}), do: "unexpected end of input at position #{pos}"

  def message(%{position: pos, token: token}),
    do: "unexpected byte #{inspect(<<token>>)} at position #{pos}"
end

defmodule Fidelity.JSON do
  @moduledoc """
  A JSON decoder whose loops are tail calls inside macro-built `case`s (imported macros): nested
  arrays and objects are kept on an explicit stack, so decoding never grows the process stack.
  Option `finish:` is called (in tail position) with the decoded value instead of returning
  `{:ok, value}`.
  """
  import Fidelity.JSON.Macros
  alias Fidelity.JSON.DecodeError

  def decode(bin, opts \\ []) when is_binary(bin) do
    value(bin, [{:done, Keyword.get(opts, :finish)}], 0)
  end

  def decode!(bin, opts \\ []) do
    case decode(bin, opts) do
      {:ok, value} -> value
      {:error, %DecodeError{} = e} -> raise %{e | data: bin}
      other -> other
    end
  end

  defp value(bin, stack, pos) do
    byte_case bin do
      b when is_ws(b) -> value(rest, stack, pos + 1)
      ?[ -> array(rest, stack, pos + 1)
      ?{ -> object(rest, stack, pos + 1)
      ?" -> string(rest, stack, pos + 1, [])
      ?t -> literal(rest, "rue", true, stack, pos + 1)
      ?f -> literal(rest, "alse", false, stack, pos + 1)
      ?n -> literal(rest, "ull", nil, stack, pos + 1)
      b when b in ?0..?9 or b == ?- -> number(bin, stack, pos)
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp array(bin, stack, pos) do
    byte_case bin do
      b when is_ws(b) -> array(rest, stack, pos + 1)
      ?] -> continue(rest, stack, [], pos + 1)
      _ -> value(bin, [{:array, []} | stack], pos)
    end
  end

  defp object(bin, stack, pos) do
    byte_case bin do
      b when is_ws(b) -> object(rest, stack, pos + 1)
      ?} -> continue(rest, stack, %{}, pos + 1)
      ?" -> string(rest, [{:key, []} | stack], pos + 1, [])
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp literal(bin, word, value, stack, pos) do
    size = byte_size(word)

    case bin do
      <<^word::binary-size(size), rest::binary>> -> continue(rest, stack, value, pos + size)
      <<b, _::binary>> -> error(b, pos)
      "" -> error(:eof, pos)
    end
  end

  defp number(bin, stack, pos) do
    {sign, bin, pos} = on_byte(bin, ?-, {-1, rest, pos + 1}, {1, bin, pos})
    integer(bin, stack, pos, sign, 0, 0)
  end

  defp integer(bin, stack, pos, sign, n, count) do
    byte_case bin do
      d when d in ?0..?9 -> integer(rest, stack, pos + 1, sign, n * 10 + d - ?0, count + 1)
      ?. when count > 0 -> fraction(rest, stack, pos + 1, sign * n, 0, 1)
      _ when count > 0 -> continue(bin, stack, sign * n, pos)
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp fraction(bin, stack, pos, int, num, den) do
    byte_case bin do
      d when d in ?0..?9 -> fraction(rest, stack, pos + 1, int, num * 10 + d - ?0, den * 10)
      _ when den > 1 -> continue(bin, stack, int + sign(int) * num / den, pos)
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp sign(n) when n < 0, do: -1
  defp sign(_), do: 1

  defp string(bin, stack, pos, acc) do
    byte_case bin do
      ?" -> continue(rest, stack, acc |> Enum.reverse() |> IO.iodata_to_binary(), pos + 1)
      ?\\ -> escape(rest, stack, pos + 1, acc)
      b when b >= 0x20 -> string(rest, stack, pos + 1, [b | acc])
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp escape(bin, stack, pos, acc) do
    expect(bin, ?n,
      do: string(rest, stack, pos + 1, [?\n | acc]),
      else: escape_other(bin, stack, pos, acc)
    )
  end

  defp escape_other(<<c, rest::binary>>, stack, pos, acc) when c in [?", ?\\, ?/],
    do: string(rest, stack, pos + 1, [c | acc])

  defp escape_other(<<?t, rest::binary>>, stack, pos, acc),
    do: string(rest, stack, pos + 1, [?\t | acc])

  defp escape_other(<<b, _::binary>>, _stack, pos, _acc), do: error(b, pos)
  defp escape_other(<<>>, _stack, pos, _acc), do: error(:eof, pos)

  # a value is complete: hand it to the frame below
  defp continue(bin, [{:done, finish}], value, pos) do
    byte_case bin do
      b when is_ws(b) -> continue(rest, [{:done, finish}], value, pos + 1)
      :eof -> if finish, do: finish.(value), else: {:ok, value}
      b -> error(b, pos)
    end
  end

  defp continue(bin, [{:key, chars} | stack], key, pos) when chars == [] do
    byte_case bin do
      b when is_ws(b) -> continue(rest, [{:key, []} | stack], key, pos + 1)
      ?: -> value(rest, [{:member, key} | stack], pos + 1)
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp continue(bin, [{:member, key} | stack], value, pos) do
    {members, stack} =
      case stack do
        [{:object, members} | stack] -> {members, stack}
        stack -> {[], stack}
      end

    members = [{key, value} | members]

    byte_case bin do
      b when is_ws(b) ->
        continue(rest, [{:member, key}, {:object, tl(members)} | stack], value, pos + 1)

      ?, ->
        object_key(rest, [{:object, members} | stack], pos + 1)

      ?} ->
        continue(rest, stack, Map.new(members), pos + 1)

      b ->
        error(b, pos)

      :eof ->
        error(:eof, pos)
    end
  end

  defp continue(bin, [{:array, items} | stack], value, pos) do
    byte_case bin do
      b when is_ws(b) -> continue(rest, [{:array, items} | stack], value, pos + 1)
      ?, -> value(rest, [{:array, [value | items]} | stack], pos + 1)
      ?] -> continue(rest, stack, :lists.reverse(items, [value]), pos + 1)
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp object_key(bin, stack, pos) do
    byte_case bin do
      b when is_ws(b) -> object_key(rest, stack, pos + 1)
      ?" -> string(rest, [{:key, []} | stack], pos + 1, [])
      b -> error(b, pos)
      :eof -> error(:eof, pos)
    end
  end

  defp error(token, pos), do: {:error, %DecodeError{position: pos, token: token}}
end
