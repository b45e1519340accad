defmodule Fidelity.Text do
  @moduledoc "String helpers: delegations, default arguments with pattern heads, guards."

  defdelegate upcase(s), to: String
  defdelegate split(s, pattern \\ " "), to: String
  defdelegate words(s), to: __MODULE__.Impl, as: :split_words

  @doc "Pads to `width` with `char`, on the side given."
  def pad(text, width \\ 10, side \\ :left, char \\ " ")

  def pad(text, width, _side, _char) when byte_size(text) >= width, do: text
  def pad(text, width, :left, char), do: String.duplicate(char, width - byte_size(text)) <> text
  def pad(text, width, :right, char), do: text <> String.duplicate(char, width - byte_size(text))

  def pad(text, width, :center, char) do
    total = width - byte_size(text)
    left = div(total, 2)
    String.duplicate(char, left) <> text <> String.duplicate(char, total - left)
  end

  @doc "Truncates with an ellipsis; integers and atoms are converted first."
  def truncate(value, max \\ 8)

  def truncate(value, max) when is_integer(value),
    do: value |> Integer.to_string() |> truncate(max)

  def truncate(value, max) when is_atom(value) and not is_nil(value),
    do: value |> Atom.to_string() |> truncate(max)

  def truncate(<<_::binary>> = s, max) when byte_size(s) <= max, do: s
  def truncate(<<s::binary>>, max) when max > 3, do: binary_part(s, 0, max - 3) <> "..."

  def classify(x) when is_integer(x) and x < 0, do: :negative
  def classify(0), do: :zero
  def classify(x) when is_integer(x) and rem(x, 2) == 0, do: :even
  def classify(x) when is_integer(x), do: :odd
  def classify(x) when is_float(x), do: {:float, Float.round(x, 2)}
  def classify(<<c, _::binary>>) when c in ?0..?9, do: :numeric_string
  def classify(x) when is_binary(x), do: :string
  def classify([_ | _] = l) when length(l) > 3, do: :long_list
  def classify(l) when is_list(l), do: :list
  def classify(%{__struct__: s}), do: {:struct, s}
  def classify(m) when is_map(m) and map_size(m) == 0, do: :empty_map
  def classify(_), do: :other

  defmodule Impl do
    @moduledoc false
    def split_words(s), do: for(w <- String.split(s, ~r/\W+/, trim: true), do: String.downcase(w))
  end
end

defmodule Fidelity.Inventory do
  @moduledoc "Structs, exceptions raised and rescued, with/else, comprehensions and binaries."

  defmodule Item do
    @moduledoc false
    @enforce_keys [:sku]
    defstruct [:sku, name: "", qty: 0, price: 0, tags: []]
  end

  defmodule OutOfStock do
    @moduledoc false
    defexception [:sku, :wanted, :available]

    @impl true
    def exception(opts) do
      %__MODULE__{
        sku: opts[:sku],
        wanted: opts[:wanted],
        available: Keyword.get(opts, :available, 0)
      }
    end

    @impl true
    def message(e), do: "#{e.sku}: wanted #{e.wanted}, only #{e.available} left"
  end

  alias __MODULE__.{Item, OutOfStock}

  def new(items),
    do: Map.new(items, fn {sku, qty, price} -> {sku, %Item{sku: sku, qty: qty, price: price}} end)

  def take!(inv, sku, n) do
    case Map.fetch(inv, sku) do
      {:ok, %Item{qty: q} = item} when q >= n -> Map.put(inv, sku, %{item | qty: q - n})
      {:ok, %Item{qty: q}} -> raise OutOfStock, sku: sku, wanted: n, available: q
      :error -> raise KeyError, key: sku, term: inv
    end
  end

  def take(inv, sku, n) do
    {:ok, take!(inv, sku, n)}
  rescue
    e in OutOfStock -> {:error, {:out_of_stock, e.available}, Exception.message(e)}
    e in KeyError -> {:error, :unknown, e.key}
  end

  def order(inv, lines) do
    with {:ok, inv} <- take_all(inv, lines),
         total when total > 0 <- total(inv, lines),
         {:ok, code} <- code(lines) do
      {:ok, inv |> Map.values() |> Enum.map(& &1.qty) |> Enum.sum(), total, code}
    else
      {:error, reason, _msg} -> {:error, reason}
      0 -> {:error, :empty_order}
      :error -> {:error, :bad_code}
    end
  end

  defp take_all(inv, lines) do
    Enum.reduce_while(lines, {:ok, inv}, fn {sku, n}, {:ok, inv} ->
      case take(inv, sku, n) do
        {:ok, inv} -> {:cont, {:ok, inv}}
        error -> {:halt, error}
      end
    end)
  end

  defp total(inv, lines),
    do: Enum.sum(for {sku, n} <- lines, %Item{price: p} = inv[sku], do: p * n)

  defp code(lines) do
    bin =
      for {sku, n} <- lines,
          into: <<>>,
          do: <<byte_size(to_string(sku))::8, to_string(sku)::binary, n::16>>

    if byte_size(bin) > 0,
      do: {:ok, Base.encode16(:crypto.hash(:md5, bin), case: :lower)},
      else: :error
  end

  @doc "Decodes length-prefixed records from a binary."
  def decode_records(<<>>), do: []

  def decode_records(<<len::8, name::binary-size(len), qty::16, rest::binary>>),
    do: [{name, qty} | decode_records(rest)]

  def decode_records(<<bad::binary>>),
    do: raise(ArgumentError, "truncated record: #{byte_size(bad)} bytes left")

  def encode_records(records),
    do: for({name, qty} <- records, into: <<>>, do: <<byte_size(name)::8, name::binary, qty::16>>)

  def report(inv) do
    for {sku, %Item{qty: q, price: p}} <- Enum.sort(inv),
        q > 0,
        value = q * p,
        reduce: %{count: 0, value: 0, skus: []} do
      acc -> %{acc | count: acc.count + 1, value: acc.value + value, skus: [sku | acc.skus]}
    end
  end

  def pairs(xs, ys), do: for(x <- xs, y <- ys, x < y, uniq: true, do: {x, y})

  def utf8_chars(s), do: for(<<c::utf8 <- s>>, c > 127, do: c)
  def bytes_over(s, n), do: for(<<b <- s>>, b > n, into: "", do: <<b>>)

  def bump(%Item{} = item, by), do: %Item{item | qty: item.qty + by}
  def bump(other, _by), do: raise(BadStructError, struct: Item, term: other)
end
