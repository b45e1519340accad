defmodule ElixirScope.DAP.Wire do
  @moduledoc """
  The Debug Adapter Protocol's base framing: each message is
  `Content-Length: N\\r\\n\\r\\n` followed by N bytes of JSON (other headers are
  ignored). `parse/1` splits a byte buffer into messages and the unread rest;
  `frame/1` frames an outgoing message. JSON goes through `ElixirScope.JSON`.

  Limits keep a hostile peer from growing memory: a header block longer than
  #{8 * 1024} bytes, or a body declared longer than #{div(64 * 1024 * 1024, 1024 * 1024)} MiB, is a fatal framing error.
  """

  alias ElixirScope.JSON

  @max_header 8 * 1024
  @max_body 64 * 1024 * 1024

  @type parsed :: {:ok, map()} | {:error, String.t()}

  @doc """
  Splits `buffer` into complete messages. Returns `{parsed, rest}` where each
  parsed item is `{:ok, message}` or `{:error, reason}` (malformed JSON, a JSON
  value that is not an object, a header block without Content-Length), or
  `{:fatal, reason}` when the stream cannot be resynchronised.
  """
  @spec parse(binary()) :: {[parsed()], binary()} | {:fatal, String.t()}
  def parse(buffer), do: parse(buffer, [])

  defp parse(buffer, acc) do
    case :binary.match(buffer, "\r\n\r\n") do
      :nomatch when byte_size(buffer) > @max_header ->
        {:fatal, "no end of headers within #{@max_header} bytes"}

      :nomatch ->
        {Enum.reverse(acc), buffer}

      {pos, 4} when pos > @max_header ->
        {:fatal, "header block longer than #{@max_header} bytes"}

      {pos, 4} ->
        headers = binary_part(buffer, 0, pos)
        rest = binary_part(buffer, pos + 4, byte_size(buffer) - pos - 4)

        case content_length(headers) do
          {:ok, n} when n > @max_body ->
            {:fatal, "Content-Length #{n} exceeds #{@max_body} bytes"}

          {:ok, n} when byte_size(rest) >= n ->
            <<body::binary-size(n), rest::binary>> = rest
            parse(rest, [decode(body) | acc])

          {:ok, _n} ->
            {Enum.reverse(acc), buffer}

          :error ->
            parse(rest, [{:error, "a header block without a valid Content-Length: #{inspect(headers, limit: 80)}"} | acc])
        end
    end
  end

  @doc "The Content-Length of a header block (`{:ok, n}` or `:error`)."
  @spec content_length(binary()) :: {:ok, non_neg_integer()} | :error
  def content_length(headers) do
    headers
    |> String.split("\r\n")
    |> Enum.find_value(:error, fn line ->
      case String.split(line, ":", parts: 2) do
        [name, value] ->
          if String.downcase(String.trim(name)) == "content-length" do
            case Integer.parse(String.trim(value)) do
              {n, ""} when n >= 0 -> {:ok, n}
              _ -> nil
            end
          end

        _ ->
          nil
      end
    end)
  end

  @doc "Decodes one message body: a JSON object, else an error."
  @spec decode(binary()) :: parsed()
  def decode(body) do
    case JSON.decode(body) do
      {:ok, %{} = msg} -> {:ok, msg}
      {:ok, other} -> {:error, "a message must be a JSON object, got: #{String.slice(inspect(other), 0, 80)}"}
      {:error, reason} -> {:error, "malformed JSON: #{reason}"}
    end
  end

  @doc "Frames a message (a map) for the wire."
  @spec frame(map()) :: iodata()
  def frame(message) do
    body = JSON.encode!(message)
    ["Content-Length: ", Integer.to_string(byte_size(body)), "\r\n\r\n", body]
  end
end
