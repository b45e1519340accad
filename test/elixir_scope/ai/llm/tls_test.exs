defmodule ElixirScope.AI.LLM.TLSTest do
  @moduledoc "HTTPS through libcurl: a trusted local server works, an untrusted certificate is a :tls error."
  use ExUnit.Case, async: true
  @moduletag :capture_log

  alias ElixirScope.AI.LLM.Gemini
  alias ElixirScope.Test.LLMServer

  setup_all do
    {:ok, _} = Application.ensure_all_started(:ssl)

    san =
      {:Extension, {2, 5, 29, 17}, false,
       [{:dNSName, ~c"localhost"}, {:iPAddress, <<127, 0, 0, 1>>}]}

    conf =
      :public_key.pkix_test_data(%{
        server_chain: %{
          root: [key: {:rsa, 2048, 65537}, digest: :sha256],
          peer: [key: {:rsa, 2048, 65537}, digest: :sha256, extensions: [san]]
        },
        client_chain: %{root: [key: {:rsa, 2048, 65537}], peer: [key: {:rsa, 2048, 65537}]}
      })

    dir = Path.join(System.tmp_dir!(), "es_tls_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    ca_file = Path.join(dir, "ca.pem")

    File.write!(
      ca_file,
      :public_key.pem_encode(
        Enum.map(conf.client_config[:cacerts], &{:Certificate, &1, :not_encrypted})
      )
    )

    server_opts = Keyword.take(conf.server_config, [:cert, :key, :cacerts])

    {:ok, listen} =
      :ssl.listen(0, [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}] ++ server_opts)

    {:ok, {_, port}} = :ssl.sockname(listen)
    acceptor = spawn(fn -> accept_loop(listen) end)
    :ok = :ssl.controlling_process(listen, acceptor)

    on_exit(fn ->
      Process.exit(acceptor, :kill)
      File.rm_rf!(dir)
    end)

    %{url: "https://127.0.0.1:#{port}", ca_file: ca_file}
  end

  defp accept_loop(listen) do
    with {:ok, t} <- :ssl.transport_accept(listen) do
      spawn(fn ->
        case :ssl.handshake(t, 5000) do
          {:ok, s} -> serve(s, "")
          _ -> :ok
        end
      end)
      |> then(&:ssl.controlling_process(t, &1))

      accept_loop(listen)
    end
  end

  defp serve(s, acc) do
    if String.contains?(acc, "\r\n\r\n") and complete?(acc) do
      body = LLMServer.gemini_body("OK over TLS")

      :ssl.send(
        s,
        "HTTP/1.1 200 OK\r\ncontent-length: #{byte_size(body)}\r\nconnection: close\r\n\r\n" <>
          body
      )

      :ssl.close(s)
    else
      case :ssl.recv(s, 0, 5000) do
        {:ok, data} -> serve(s, acc <> data)
        _ -> :ssl.close(s)
      end
    end
  end

  defp complete?(acc) do
    [head, body] = String.split(acc, "\r\n\r\n", parts: 2)

    case Regex.run(~r/content-length:\s*(\d+)/i, head) do
      [_, n] -> byte_size(body) >= String.to_integer(n)
      nil -> true
    end
  end

  test "a server whose CA is given in :ca_file is trusted", %{url: url, ca_file: ca} do
    assert :ok = Gemini.test_connection(base_url: url, api_key: "k-tls-123", ca_file: ca)
  end

  test "an untrusted certificate is a TLS failure", %{url: url} do
    assert {:error, {:tls, msg}} = Gemini.test_connection(base_url: url, api_key: "k-tls-123")
    assert msg =~ "TLS"
    assert msg =~ "ca_file"
    # let the server log its side of the failed handshake inside the captured test
    Process.sleep(100)
  end
end
