defmodule ElixirScope.AI.LLM.Vertex do
  @moduledoc """
  Gemini on Vertex AI. A service-account JSON file (`VERTEX_JSON_FILE`, or
  `ai: [credentials_file: ...]`) gives the client e-mail and the
  private key; a JWT signed with RS256 (`:public_key`) is exchanged at the
  OAuth2 token endpoint for an access token, cached until shortly before it
  expires; requests go to the regional `generateContent` endpoint of the
  project and location.

  Settings (`config :elixir_scope, :ai, [...]` with `llm_provider: :vertex`,
  see `ElixirScope.AI.LLM.Config`, or call options): `:credentials_file`,
  `:project` (config key `:project_id`; default: `VERTEX_PROJECT`, else the file's `project_id`), `:location` (default `VERTEX_LOCATION`
  or `"us-central1"`), `:model` (default `"gemini-2.0-flash"`), `:base_url`
  (default `https://LOCATION-aiplatform.googleapis.com`), `:token_url`
  (default: the file's `token_uri`).
  The private key and tokens are `ElixirScope.AI.LLM.Secret`s.
  """

  use ElixirScope.AI.LLM.Remote

  alias ElixirScope.AI.LLM.{Config, HTTP, Remote, Secret, Settings}

  @scope "https://www.googleapis.com/auth/cloud-platform"
  @default_token_url "https://oauth2.googleapis.com/token"

  @impl true
  def provider_name, do: :vertex

  @doc false
  @spec settings(keyword) :: Settings.t()
  def settings(opts) do
    s =
      Config.settings(
        :vertex,
        [model: "gemini-2.0-flash", location: "us-central1"],
        [
          credentials_file: System.get_env("VERTEX_JSON_FILE"),
          project: System.get_env("VERTEX_PROJECT"),
          location: System.get_env("VERTEX_LOCATION")
        ],
        opts
      )

    location = Keyword.fetch!(s.options, :location)

    base =
      s.base_url ||
        if location == "global",
          do: "https://aiplatform.googleapis.com",
          else: "https://#{location}-aiplatform.googleapis.com"

    %{s | base_url: base}
  end

  @doc false
  @spec check_configured(Settings.t()) :: :ok | {:error, {atom, String.t()}}
  def check_configured(%Settings{options: o}) do
    case Keyword.get(o, :credentials_file) do
      f when is_binary(f) and f != "" ->
        :ok

      _ ->
        {:error,
         {:not_configured,
          "Vertex AI needs a service-account JSON file: set VERTEX_JSON_FILE or ai: [credentials_file: ...]"}}
    end
  end

  @impl true
  def configured?, do: configured?([])

  @doc "Whether a credentials file is configured and readable."
  @spec configured?(keyword) :: boolean
  def configured?(opts) do
    s = settings(opts)
    check_configured(s) == :ok and File.regular?(Keyword.fetch!(s.options, :credentials_file))
  end

  # ------------------------------------------------------------ credentials

  @doc """
  Reads a service-account file: `{:ok, %{client_email, private_key (Secret),
  private_key_id, project_id, token_uri}}`. Error messages never contain the key.
  """
  @spec load_credentials(Path.t()) :: {:ok, map} | {:error, {atom, String.t()}}
  def load_credentials(path) do
    with {:read, {:ok, data}} <- {:read, File.read(path)},
         {:json, {:ok, %{} = json}} <- {:json, ElixirScope.NIF.json_decode(data)},
         {:fields, %{"client_email" => email, "private_key" => pem}}
         when is_binary(email) and is_binary(pem) <-
           {:fields, json},
         {:key, {:ok, _key}} <- {:key, decode_key(pem)} do
      {:ok,
       %{
         client_email: email,
         private_key: Secret.wrap(pem),
         private_key_id: json["private_key_id"],
         project_id: json["project_id"],
         token_uri: json["token_uri"] || @default_token_url
       }}
    else
      {:read, {:error, r}} ->
        {:error,
         {:invalid_credentials,
          "cannot read the Vertex service-account file #{path}: #{:file.format_error(r)}"}}

      {:json, _} ->
        {:error,
         {:invalid_credentials, "the Vertex service-account file #{path} is not a JSON object"}}

      {:fields, _} ->
        {:error,
         {:invalid_credentials,
          "the Vertex service-account file #{path} lacks client_email or private_key"}}

      {:key, {:error, msg}} ->
        {:error, {:invalid_credentials, "the private_key in #{path} #{msg}"}}
    end
  end

  defp decode_key(pem) do
    case :public_key.pem_decode(pem) do
      [entry | _] ->
        case :public_key.pem_entry_decode(entry) do
          key when elem(key, 0) == :RSAPrivateKey -> {:ok, key}
          {:PrivateKeyInfo, _, _, _, _} = pki -> {:ok, pki}
          _ -> {:error, "is not an RSA private key"}
        end

      [] ->
        {:error, "is not a PEM-encoded private key"}
    end
  rescue
    _ -> {:error, "cannot be decoded as an RSA private key"}
  catch
    _, _ -> {:error, "cannot be decoded as an RSA private key"}
  end

  @doc "A signed RS256 JWT asserting the service account, for `aud` (the token URL)."
  @spec jwt(map, String.t(), integer) :: String.t()
  def jwt(creds, aud, now \\ System.system_time(:second)) do
    header = %{"alg" => "RS256", "typ" => "JWT"}

    header =
      if creds.private_key_id, do: Map.put(header, "kid", creds.private_key_id), else: header

    claims = %{
      "iss" => creds.client_email,
      "scope" => @scope,
      "aud" => aud,
      "iat" => now,
      "exp" => now + 3600
    }

    input =
      b64(ElixirScope.NIF.json_encode(header)) <> "." <> b64(ElixirScope.NIF.json_encode(claims))

    {:ok, key} = decode_key(Secret.reveal(creds.private_key))
    input <> "." <> b64(:public_key.sign(input, :sha256, key))
  end

  defp b64(bin), do: Base.url_encode64(bin, padding: false)

  # ------------------------------------------------------------ tokens

  @doc """
  An OAuth2 access token (a Secret) for the configured service account,
  from the cache while it is more than a minute from expiring.
  """
  @spec access_token(Settings.t()) :: {:ok, Secret.t(), map} | {:error, {atom, String.t()}}
  def access_token(%Settings{} = s) do
    with {:ok, creds} <- load_credentials(Keyword.fetch!(s.options, :credentials_file)) do
      token_url = Keyword.get(s.options, :token_url) || creds.token_uri
      key = {__MODULE__, :token, creds.client_email, token_url}
      now = System.system_time(:second)

      case :persistent_term.get(key, nil) do
        {token, refresh_at} when refresh_at > now ->
          {:ok, token, creds}

        _ ->
          with {:ok, token, expires_in} <- fetch_token(creds, token_url, s) do
            margin = if expires_in > 120, do: 60, else: div(expires_in, 2)
            :persistent_term.put(key, {token, now + expires_in - margin})
            {:ok, token, creds}
          end
      end
    end
  end

  @doc "Forgets every cached access token."
  @spec clear_token_cache() :: :ok
  def clear_token_cache do
    for {{__MODULE__, :token, _, _} = k, _} <- :persistent_term.get(),
        do: :persistent_term.erase(k)

    :ok
  end

  defp fetch_token(creds, token_url, s) do
    body =
      URI.encode_query(%{
        "grant_type" => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion" => jwt(creds, token_url)
      })

    http =
      Config.http_opts(s,
        provider: "the Google OAuth2 token endpoint",
        auth_hint:
          "the service account #{creds.client_email} (VERTEX_JSON_FILE) was refused: check that the key is active and not revoked",
        secrets: [creds.private_key]
      )

    with {:ok, resp} <-
           HTTP.request(
             "POST",
             token_url,
             [{"content-type", "application/x-www-form-urlencoded"}],
             body,
             http
           ) do
      case ElixirScope.NIF.json_decode(resp.body) do
        {:ok, %{"access_token" => t} = m} when is_binary(t) and t != "" ->
          expires =
            if is_integer(m["expires_in"]) and m["expires_in"] > 0,
              do: m["expires_in"],
              else: 3600

          {:ok, Secret.wrap(t), expires}

        {:ok, _} ->
          {:error, {:malformed_json, "the token endpoint answered without an access_token"}}

        {:error, msg} ->
          {:error, {:malformed_json, "the token endpoint sent invalid JSON: #{msg}"}}
      end
    end
  end

  # ------------------------------------------------------------ generateContent

  @doc false
  @spec complete(String.t(), String.t(), :plan | :json | :text, Settings.t()) ::
          {:ok, String.t()} | {:error, {atom, String.t()}}
  def complete(system, user, mode, %Settings{} = s) do
    with {:ok, token, creds} <- access_token(s) do
      case generate(system, user, mode, s, token, creds) do
        {:error, {:unauthorized, _}} ->
          # the cached token may have been revoked: fetch a new one once
          clear_token_cache()

          with {:ok, token2, creds2} <- access_token(s) do
            generate(system, user, mode, s, token2, creds2)
          end

        other ->
          other
      end
    end
  end

  defp generate(system, user, mode, s, token, creds) do
    o = s.options
    project = Keyword.get(o, :project) || creds.project_id
    location = Keyword.fetch!(o, :location)

    if is_nil(project) do
      {:error,
       {:not_configured,
        "Vertex AI needs a project: set ai: [project_id: ...], VERTEX_PROJECT, or project_id in the service-account file"}}
    else
      body =
        ElixirScope.NIF.llm_build_gemini_request(
          system,
          user,
          mode == :plan,
          o[:temperature],
          o[:max_tokens]
        )

      body = if mode == :json, do: Remote.gemini_json_mode(body), else: body

      url =
        "#{s.base_url}/v1/projects/#{URI.encode(project)}/locations/#{URI.encode(location)}" <>
          "/publishers/google/models/#{URI.encode(s.model)}:generateContent"

      headers = [
        {"content-type", "application/json"},
        {"authorization", "Bearer " <> Secret.reveal(token)}
      ]

      http =
        Config.http_opts(s,
          provider: "Vertex AI",
          auth_hint:
            "check that #{creds.client_email} has the Vertex AI User role on project #{project} and the API is enabled",
          secrets: [token, creds.private_key]
        )

      with {:ok, resp} <- HTTP.request("POST", url, headers, body, http) do
        Remote.extract(:gemini, resp.body, "Vertex AI")
      end
    end
  end
end
