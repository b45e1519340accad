defmodule Fidelity.Options do
  @moduledoc """
  Option validation against a schema with nested keyword lists, in the style of NimbleOptions:
  types, required keys, defaults, nested `:keyword_list` schemas, custom validators and
  errors that carry the path of the failing key.
  """

  defmodule ValidationError do
    @moduledoc "A failed validation: the key, its path in the options and a message."
    defexception [:key, :value, keys_path: [], message: "invalid options"]

    @impl true
    def message(%{keys_path: [], message: m}), do: m
    def message(%{keys_path: path, message: m}), do: "#{m} (in options #{inspect(path)})"
  end

  @type schema :: keyword()

  @doc "Validates `opts` against `schema`: `{:ok, validated}` or `{:error, %ValidationError{}}`."
  @spec validate(keyword(), schema()) :: {:ok, keyword()} | {:error, ValidationError.t()}
  def validate(opts, schema) when is_list(opts) and is_list(schema) do
    if Keyword.keyword?(opts) do
      validate_keys(opts, schema, [])
    else
      {:error,
       %ValidationError{value: opts, message: "expected a keyword list, got: #{inspect(opts)}"}}
    end
  end

  def validate(opts, _schema),
    do:
      {:error,
       %ValidationError{value: opts, message: "expected a keyword list, got: #{inspect(opts)}"}}

  @doc "Like `validate/2`, raising `ValidationError`."
  def validate!(opts, schema) do
    case validate(opts, schema) do
      {:ok, validated} -> validated
      {:error, error} -> raise error
    end
  end

  defp validate_keys(opts, schema, path) do
    with :ok <- check_unknown(opts, schema, path),
         {:ok, acc} <- validate_each(schema, opts, path, []) do
      {:ok, Enum.reverse(acc)}
    end
  end

  defp check_unknown(opts, schema, path) do
    case Keyword.keys(opts) -- Keyword.keys(schema) do
      [] ->
        :ok

      unknown ->
        error(
          hd(unknown),
          nil,
          path,
          "unknown options #{inspect(unknown)}, valid options are: #{inspect(Keyword.keys(schema))}"
        )
    end
  end

  defp validate_each([], _opts, _path, acc), do: {:ok, acc}

  defp validate_each([{key, spec} | rest], opts, path, acc) do
    case fetch(opts, key, spec) do
      {:ok, value} ->
        case validate_value(value, spec[:type] || :any, key, path) do
          {:ok, value} -> validate_each(rest, opts, path, [{key, value} | acc])
          {:error, _} = error -> error
        end

      :default ->
        validate_each(rest, opts, path, [{key, spec[:default]} | acc])

      :skip ->
        validate_each(rest, opts, path, acc)

      {:error, _} = error ->
        error
    end
  end

  defp fetch(opts, key, spec) do
    cond do
      Keyword.has_key?(opts, key) -> {:ok, Keyword.fetch!(opts, key)}
      Keyword.has_key?(spec, :default) -> :default
      spec[:required] -> error(key, nil, [], "required option #{inspect(key)} not found")
      true -> :skip
    end
  end

  defp validate_value(value, :any, _key, _path), do: {:ok, value}
  defp validate_value(value, :integer, _key, _path) when is_integer(value), do: {:ok, value}

  defp validate_value(value, :pos_integer, _key, _path) when is_integer(value) and value > 0,
    do: {:ok, value}

  defp validate_value(value, :atom, _key, _path) when is_atom(value), do: {:ok, value}
  defp validate_value(value, :boolean, _key, _path) when is_boolean(value), do: {:ok, value}
  defp validate_value(value, :string, _key, _path) when is_binary(value), do: {:ok, value}

  defp validate_value(value, {:in, choices}, key, path) do
    if value in choices,
      do: {:ok, value},
      else:
        error(
          key,
          value,
          path,
          "expected #{inspect(key)} to be in #{inspect(choices)}, got: #{inspect(value)}"
        )
  end

  defp validate_value(values, {:list, type}, key, path) when is_list(values) do
    values
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, []}, fn {v, i}, {:ok, acc} ->
      case validate_value(v, type, key, path ++ [i]) do
        {:ok, v} -> {:cont, {:ok, [v | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  defp validate_value(value, {:keyword_list, keys}, key, path) when is_list(value) do
    if Keyword.keyword?(value),
      do: validate_keys(value, keys, path ++ [key]),
      else:
        error(
          key,
          value,
          path,
          "expected #{inspect(key)} to be a keyword list, got: #{inspect(value)}"
        )
  end

  defp validate_value(value, {:custom, mod, fun, args}, key, path) do
    case apply(mod, fun, [value | args]) do
      {:ok, value} ->
        {:ok, value}

      {:error, message} when is_binary(message) ->
        error(key, value, path, message)

      other ->
        raise ArgumentError,
              "custom validator #{inspect(mod)}.#{fun} must return {:ok, _} or {:error, message}, got: #{inspect(other)}"
    end
  end

  defp validate_value(value, type, key, path),
    do:
      error(
        key,
        value,
        path,
        "invalid value for #{inspect(key)} option: expected #{describe(type)}, got: #{inspect(value)}"
      )

  defp describe({:list, t}), do: "list of #{describe(t)}"
  defp describe({:keyword_list, _}), do: "keyword list"
  defp describe(t), do: Atom.to_string(t) |> String.replace("_", " ")

  defp error(key, value, path, message),
    do: {:error, %ValidationError{key: key, value: value, keys_path: path, message: message}}

  # a custom validator used by the schema below
  def port(p) when is_integer(p) and p in 1..65_535, do: {:ok, p}
  def port(p) when is_binary(p), do: p |> Integer.parse() |> port_from_parse()
  def port(p), do: {:error, "expected a port, got: #{inspect(p)}"}

  defp port_from_parse({n, ""}), do: port(n)
  defp port_from_parse(_), do: {:error, "expected a numeric port"}

  @doc "The schema of a (fictional) HTTP client pool."
  def pool_schema do
    [
      name: [type: :atom, required: true],
      size: [type: :pos_integer, default: 10],
      mode: [type: {:in, [:lifo, :fifo]}, default: :fifo],
      conn: [
        type:
          {:keyword_list,
           [
             host: [type: :string, required: true],
             port: [type: {:custom, __MODULE__, :port, []}, default: 80],
             tls: [
               type:
                 {:keyword_list,
                  [verify: [type: :boolean, default: true], versions: [type: {:list, :atom}]]}
             ]
           ]},
        required: true
      ],
      tags: [type: {:list, :string}, default: []],
      extra: [type: :any]
    ]
  end
end
