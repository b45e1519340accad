defmodule ElixirScope.MCP.Schema do
  @moduledoc """
  Checks tool arguments against the JSON Schema subset the MCP tools declare:
  `type` (object, string, integer, boolean, array), `properties`, `required`,
  `additionalProperties: false`, `enum`, `minimum`/`maximum`, `minItems`/
  `maxItems`, `items`, and `oneOf` of types. Returns the first problem as a
  sentence, so an agent can correct its call.
  """

  @doc "`:ok` or `{:error, message}`."
  @spec validate(term(), map(), String.t()) :: :ok | {:error, String.t()}
  def validate(value, schema, path \\ "arguments")

  def validate(value, %{"oneOf" => alternatives}, path) do
    if Enum.any?(alternatives, &(validate(value, &1, path) == :ok)),
      do: :ok,
      else: {:error, "#{path} must be one of: #{Enum.map_join(alternatives, ", ", &(&1["type"] || "?"))}"}
  end

  def validate(value, %{"type" => type} = schema, path) do
    with :ok <- type(value, type, path),
         :ok <- enum(value, schema, path),
         :ok <- range(value, schema, path),
         :ok <- items(value, schema, path) do
      object(value, schema, path)
    end
  end

  def validate(_value, _schema, _path), do: :ok

  defp type(v, "object", _) when is_map(v), do: :ok
  defp type(v, "string", _) when is_binary(v), do: :ok
  defp type(v, "integer", _) when is_integer(v), do: :ok
  defp type(v, "number", _) when is_number(v), do: :ok
  defp type(v, "boolean", _) when is_boolean(v), do: :ok
  defp type(v, "array", _) when is_list(v), do: :ok
  defp type(v, t, path), do: {:error, "#{path} must be #{article(t)} #{t}, got #{describe(v)}"}

  defp article("integer"), do: "an"
  defp article("object"), do: "an"
  defp article("array"), do: "an"
  defp article(_), do: "a"

  defp describe(nil), do: "null"
  defp describe(v) when is_binary(v), do: "a string"
  defp describe(v) when is_integer(v), do: "an integer"
  defp describe(v) when is_number(v), do: "a number"
  defp describe(v) when is_boolean(v), do: "a boolean"
  defp describe(v) when is_list(v), do: "an array"
  defp describe(v) when is_map(v), do: "an object"

  defp enum(v, %{"enum" => allowed}, path) do
    if v in allowed, do: :ok, else: {:error, "#{path} must be one of #{Enum.map_join(allowed, ", ", &inspect/1)}"}
  end

  defp enum(_, _, _), do: :ok

  defp range(v, schema, path) when is_number(v) do
    cond do
      is_number(schema["minimum"]) and v < schema["minimum"] -> {:error, "#{path} must be at least #{schema["minimum"]}"}
      is_number(schema["maximum"]) and v > schema["maximum"] -> {:error, "#{path} must be at most #{schema["maximum"]}"}
      true -> :ok
    end
  end

  defp range(v, schema, path) when is_list(v) do
    cond do
      is_integer(schema["minItems"]) and length(v) < schema["minItems"] -> {:error, "#{path} needs at least #{schema["minItems"]} items"}
      is_integer(schema["maxItems"]) and length(v) > schema["maxItems"] -> {:error, "#{path} takes at most #{schema["maxItems"]} items"}
      true -> :ok
    end
  end

  defp range(v, schema, path) when is_binary(v) do
    if is_integer(schema["maxLength"]) and String.length(v) > schema["maxLength"],
      do: {:error, "#{path} is longer than #{schema["maxLength"]} characters"},
      else: :ok
  end

  defp range(_, _, _), do: :ok

  defp items(v, %{"items" => item_schema}, path) when is_list(v) do
    v
    |> Enum.with_index()
    |> Enum.find_value(:ok, fn {x, i} ->
      case validate(x, item_schema, "#{path}[#{i}]") do
        :ok -> nil
        error -> error
      end
    end)
  end

  defp items(_, _, _), do: :ok

  defp object(v, schema, path) when is_map(v) do
    props = schema["properties"] || %{}
    missing = Enum.find(schema["required"] || [], &(not Map.has_key?(v, &1)))
    extra = if schema["additionalProperties"] == false, do: Enum.find(Map.keys(v), &(not Map.has_key?(props, &1)))

    cond do
      missing -> {:error, "#{path}.#{missing} is required"}
      extra -> {:error, "#{path}.#{extra} is not a known argument (known: #{props |> Map.keys() |> Enum.sort() |> Enum.join(", ")})"}
      true -> Enum.find_value(v, :ok, fn {k, x} -> props[k] && error_or_nil(validate(x, props[k], "#{path}.#{k}")) end)
    end
  end

  defp object(_, _, _), do: :ok

  defp error_or_nil(:ok), do: nil
  defp error_or_nil(error), do: error
end
