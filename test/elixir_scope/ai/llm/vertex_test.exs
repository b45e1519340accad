defmodule ElixirScope.AI.LLM.VertexTest do
  use ExUnit.Case, async: false
  import ExUnit.CaptureLog

  alias ElixirScope.AI.LLM.{Secret, Vertex}
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  @email "scope-test@test-project.iam.gserviceaccount.com"

  setup_all do
    key = :public_key.generate_key({:rsa, 2048, 65537})
    {:RSAPrivateKey, _, n, e, _, _, _, _, _, _, _} = key
    pem = :public_key.pem_encode([:public_key.pem_entry_encode(:PrivateKeyInfo, key)])
    other = :public_key.generate_key({:rsa, 2048, 65537})
    {:RSAPrivateKey, _, n2, e2, _, _, _, _, _, _, _} = other
    %{pem: pem, public: {:RSAPublicKey, n, e}, other_public: {:RSAPublicKey, n2, e2}}
  end

  setup %{pem: pem, public: public} = ctx do
    Vertex.clear_token_cache()
    test_pid = self()
    verify_with = Map.get(ctx, :verify_with, public)
    token_state = :counters.new(1, [])

    srv =
      LLMServer.start(fn req ->
        send(test_pid, {:request, req})
        handle(req, verify_with, test_pid, token_state, ctx)
      end)

    dir = Path.join(System.tmp_dir!(), "es_vertex_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    file = Path.join(dir, "sa.json")

    File.write!(
      file,
      ElixirScope.NIF.json_encode(%{
        "type" => "service_account",
        "project_id" => "test-project",
        "private_key_id" => "kid-1",
        "private_key" => pem,
        "client_email" => @email,
        "token_uri" => srv.url <> "/token"
      })
    )

    on_exit(fn ->
      LLMServer.stop(srv)
      File.rm_rf!(dir)
    end)

    %{
      srv: srv,
      sa_file: file,
      dir: dir,
      opts: [
        credentials_file: file,
        base_url: srv.url,
        location: "us-central1",
        model: "gemini-test",
        backoff_ms: 5
      ]
    }
  end

  defp handle(%{path: "/token"} = req, public, test_pid, state, ctx) do
    form = URI.decode_query(req.body)

    with "urn:ietf:params:oauth:grant-type:jwt-bearer" <- form["grant_type"],
         {:ok, claims} <- LLMServer.verify_jwt(form["assertion"], public) do
      send(test_pid, {:claims, claims})
      :counters.add(state, 1, 1)
      n = :counters.get(state, 1)

      body = %{
        "access_token" => "ya29.test-token-#{n}",
        "expires_in" => Map.get(ctx, :expires_in, 3600),
        "token_type" => "Bearer"
      }

      {200, [{"content-type", "application/json"}], ElixirScope.NIF.json_encode(body)}
    else
      _ -> {401, [], ~s({"error":"invalid_grant","error_description":"Invalid JWT Signature."})}
    end
  end

  defp handle(
         %{
           path:
             "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-test:generateContent"
         } = req,
         _p,
         _t,
         _s,
         ctx
       ) do
    revoked = Map.get(ctx, :revoked, nil)

    case req.headers["authorization"] do
      "Bearer ya29.test-token-" <> n when n != revoked ->
        {:ok, body} = ElixirScope.NIF.json_decode(req.body)

        text =
          if get_in(body, ["generationConfig", "responseSchema"]),
            do: AIFixtures.plan_answer(),
            else: "OK"

        {200, [], LLMServer.gemini_body(text)}

      _ ->
        {401, [], LLMServer.error_body(401, "Request had invalid authentication credentials.")}
    end
  end

  defp handle(_req, _p, _t, _s, _ctx), do: {404, [], LLMServer.error_body(404, "not found")}

  test "service account -> RS256 JWT verified by the token endpoint -> token -> regional generateContent",
       %{opts: opts, srv: srv} do
    capture_log(fn ->
      assert {:ok, plan, _warnings} = Vertex.plan_instrumentation(AIFixtures.analyses(), opts)
      assert plan.provider == :vertex
      AIFixtures.assert_answer_plan(plan)
    end)

    assert_received {:claims, claims}
    assert claims["iss"] == @email
    assert claims["aud"] == srv.url <> "/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims["exp"] - claims["iat"] == 3600
    assert_in_delta claims["iat"], System.system_time(:second), 5
  end

  test "the token is cached until shortly before it expires", %{opts: opts, srv: srv} do
    assert :ok = Vertex.test_connection(opts)
    assert :ok = Vertex.test_connection(opts)
    assert Enum.count(LLMServer.requests(srv), &(&1.path == "/token")) == 1
    Vertex.clear_token_cache()
    assert :ok = Vertex.test_connection(opts)
    assert Enum.count(LLMServer.requests(srv), &(&1.path == "/token")) == 2
  end

  @tag expires_in: 1
  test "a short-lived token is refreshed", %{opts: opts, srv: srv} do
    assert :ok = Vertex.test_connection(opts)
    Process.sleep(1100)
    assert :ok = Vertex.test_connection(opts)
    assert Enum.count(LLMServer.requests(srv), &(&1.path == "/token")) == 2
  end

  @tag revoked: "1"
  test "a token refused by generateContent is replaced once", %{opts: opts, srv: srv} do
    assert :ok = Vertex.test_connection(opts)
    paths = Enum.map(LLMServer.requests(srv), & &1.path)
    assert Enum.count(paths, &(&1 == "/token")) == 2
  end

  test "a JWT signed with another key is refused: actionable, no key material", ctx do
    # the server verifies with a different public key
    srv =
      LLMServer.start(fn req ->
        handle(req, ctx.other_public, self(), :counters.new(1, []), %{})
      end)

    on_exit(fn -> LLMServer.stop(srv) end)
    File.write!(ctx.sa_file, File.read!(ctx.sa_file) |> String.replace(ctx.srv.url, srv.url))
    opts = Keyword.put(ctx.opts, :base_url, srv.url)
    assert {:error, {:unauthorized, msg}} = Vertex.test_connection(opts)
    assert msg =~ @email
    refute msg =~ "PRIVATE KEY"
    refute msg =~ String.slice(ctx.pem, 40, 40)
  end

  test "credential file problems are reported", %{dir: dir, opts: opts} do
    missing = Keyword.put(opts, :credentials_file, Path.join(dir, "none.json"))
    assert {:error, {:invalid_credentials, msg}} = Vertex.test_connection(missing)
    assert msg =~ "cannot read"

    bad = Path.join(dir, "bad.json")
    File.write!(bad, "{not json")

    assert {:error, {:invalid_credentials, msg}} =
             Vertex.test_connection(Keyword.put(opts, :credentials_file, bad))

    assert msg =~ "not a JSON object"

    nokey = Path.join(dir, "nokey.json")

    File.write!(
      nokey,
      ~s({"client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n"})
    )

    assert {:error, {:invalid_credentials, msg}} =
             Vertex.test_connection(Keyword.put(opts, :credentials_file, nokey))

    assert msg =~ "private_key"

    assert {:error, {:not_configured, msg}} =
             Vertex.test_connection(Keyword.put(opts, :credentials_file, ""))

    assert msg =~ "VERTEX_JSON_FILE"
  end

  test "the access token and private key are secrets", %{opts: opts, pem: pem} do
    s = Vertex.settings(opts)
    assert {:ok, token, creds} = Vertex.access_token(s)
    assert Secret.reveal(token) =~ "ya29.test-token-"
    refute inspect({token, creds}) =~ "ya29"
    refute inspect(creds) =~ String.slice(pem, 40, 40)
  end
end
