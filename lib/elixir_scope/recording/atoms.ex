defmodule ElixirScope.Recording.Atoms do
  @moduledoc """
  A recording's atom table: the atoms (and external function references,
  `&Mod.fun/arity`) that one part of a file uses, listed ahead of its ETF so
  that loading never lets `binary_to_term/2` create one.

  Atoms and export entries are never garbage collected; the VM aborts when its
  atom table is full. Loading therefore reads every table first, refuses the
  file if it names more new atoms than the caller allows
  (`ElixirScope.Config` `recording: [max_new_atoms: …]`) or more than the VM
  has room for, creates the rest, and then decodes the parts with
  `binary_to_term(bin, [:safe])`, which refuses any atom or function
  reference not created by then.

  Layout (big-endian): `u32 n`, n × (`u16 byte length`, UTF-8 name),
  `u32 m`, m × (`u32 module index`, `u32 function index`, `u8 arity`).
  """

  @typedoc "Atoms, and `{module, function, arity}` of external funs, found in terms."
  @type found :: %{optional(atom() | {atom(), atom(), arity()}) => true}

  @typedoc "A parsed table: names (not yet atoms) and export triples of indexes into them."
  @type table :: {[binary()], [{non_neg_integer(), non_neg_integer(), arity()}]}

  @max_chars 255

  @doc "Adds the atoms and external function references inside `term` to `acc`."
  @spec collect(term(), found()) :: found()
  def collect(term, acc) when is_atom(term), do: put(acc, term)
  def collect(term, acc) when is_list(term), do: collect_list(term, acc)
  def collect(term, acc) when is_tuple(term), do: collect_tuple(term, tuple_size(term), acc)
  def collect(term, acc) when is_map(term), do: :maps.fold(fn k, v, a -> collect(v, collect(k, a)) end, acc, term)
  def collect(term, acc) when is_pid(term) or is_port(term) or is_reference(term), do: put(acc, node(term))
  def collect(term, acc) when is_function(term), do: collect_fun(term, acc)
  def collect(_number_or_bitstring, acc), do: acc

  # most atoms are seen many times: looking is cheaper than putting again
  defp put(acc, key) when is_map_key(acc, key), do: acc
  defp put(acc, key), do: Map.put(acc, key, true)

  defp collect_list([h | t], acc), do: collect_list(t, collect(h, acc))
  defp collect_list([], acc), do: acc
  defp collect_list(tail, acc), do: collect(tail, acc)

  defp collect_tuple(_t, 0, acc), do: acc
  defp collect_tuple(t, i, acc), do: collect_tuple(t, i - 1, collect(elem(t, i - 1), acc))

  # an external fun is encoded as module, name and arity; a local one carries its
  # module, its creator's pid (a node name) and its free variables
  defp collect_fun(f, acc) do
    {:module, m} = :erlang.fun_info(f, :module)

    case :erlang.fun_info(f, :type) do
      {:type, :external} ->
        {:name, name} = :erlang.fun_info(f, :name)
        {:arity, a} = :erlang.fun_info(f, :arity)
        acc |> Map.put(m, true) |> Map.put(name, true) |> Map.put({m, name, a}, true)

      {:type, :local} ->
        {:pid, pid} = :erlang.fun_info(f, :pid)
        {:env, env} = :erlang.fun_info(f, :env)
        acc |> Map.put(m, true) |> Map.put(node(pid), true) |> then(&collect(env, &1))
    end
  end

  @doc "The table of what `collect/2` found."
  @spec encode(found()) :: binary()
  def encode(found) do
    {exports, atoms} = found |> Map.keys() |> Enum.split_with(&is_tuple/1)
    atoms = Enum.uniq(atoms ++ Enum.flat_map(exports, fn {m, f, _} -> [m, f] end))
    index = atoms |> Enum.with_index() |> Map.new()
    names = for a <- atoms, into: <<>>, do: (name = Atom.to_string(a); <<byte_size(name)::16, name::binary>>)
    funs = for {m, f, a} <- exports, into: <<>>, do: <<Map.fetch!(index, m)::32, Map.fetch!(index, f)::32, a::8>>
    <<length(atoms)::32, names::binary, length(exports)::32, funs::binary>>
  end

  @doc "Parses a table, checking every name; `{:error, what}` says what is wrong."
  @spec parse(binary()) :: {:ok, table()} | {:error, String.t()}
  def parse(<<n::32, rest::binary>>) when n <= byte_size(rest) / 2 do
    with {:ok, names, rest} <- names(rest, n, []),
         <<m::32, funs::binary>> when byte_size(funs) == m * 9 <- rest,
         {:ok, exports} <- exports(funs, n, []) do
      {:ok, {names, exports}}
    else
      {:error, _} = error -> error
      _ -> {:error, "its function table does not have the length it announces"}
    end
  end

  def parse(<<n::32, _::binary>>), do: {:error, "it announces #{n} atoms, more than its bytes can hold"}
  def parse(_), do: {:error, "it is shorter than its 4-byte count"}

  defp names(rest, 0, acc), do: {:ok, Enum.reverse(acc), rest}

  defp names(<<len::16, name::binary-size(len), rest::binary>>, n, acc) do
    cond do
      not String.valid?(name) -> {:error, "atom #{length(acc)} is not valid UTF-8"}
      String.length(name) > @max_chars -> {:error, "atom #{length(acc)} is longer than #{@max_chars} characters"}
      true -> names(rest, n - 1, [name | acc])
    end
  end

  defp names(_rest, _n, acc), do: {:error, "atom #{length(acc)} runs past the end of the table"}

  defp exports(<<>>, _n, acc), do: {:ok, Enum.reverse(acc)}

  defp exports(<<m::32, f::32, a::8, rest::binary>>, n, acc) when m < n and f < n,
    do: exports(rest, n, [{m, f, a} | acc])

  defp exports(_, _n, acc), do: {:error, "function reference #{length(acc)} names an atom the table does not hold"}

  @doc """
  Creates what the parsed tables name, unless that would add more than
  `max_new` atoms and function references, or fill the VM's atom table past
  nine tenths. Nothing is created when the answer is an error.
  """
  @spec admit([table()], non_neg_integer()) :: :ok | {:error, String.t()}
  def admit(tables, max_new) do
    names = tables |> Enum.flat_map(&elem(&1, 0)) |> Enum.uniq()
    exports =
      tables
      |> Enum.flat_map(fn {ns, es} -> (ns = List.to_tuple(ns); for {m, f, a} <- es, do: {elem(ns, m), elem(ns, f), a}) end)
      |> Enum.uniq()
    new_atoms = Enum.reject(names, &existing?/1)
    new = length(new_atoms) + Enum.count(exports, &new_export?/1)
    room = div(:erlang.system_info(:atom_limit) * 9, 10) - :erlang.system_info(:atom_count)

    cond do
      new > max_new ->
        {:error, "it names #{new} atoms and functions this node does not know, over the limit of #{max_new} " <>
                   "(load option or config recording: [max_new_atoms: n])"}

      length(new_atoms) > room ->
        {:error, "it names #{length(new_atoms)} new atoms and the VM's atom table has room for #{max(room, 0)}"}

      true ->
        Enum.each(new_atoms, &:erlang.binary_to_atom(&1, :utf8))
        Enum.each(exports, fn {m, f, a} -> :erlang.make_fun(to_atom(m), to_atom(f), a) end)
    end
  end

  defp existing?(name) do
    _ = :erlang.binary_to_existing_atom(name, :utf8)
    true
  rescue
    ArgumentError -> false
  end

  defp new_export?({m, f, a}) do
    not (existing?(m) and existing?(f) and :erlang.function_exported(to_atom(m), to_atom(f), a))
  end

  defp to_atom(name), do: :erlang.binary_to_existing_atom(name, :utf8)
end
