defmodule ElixirScope.RedactionTest do
  @moduledoc false
  # Secrets captured through the real runtime never reach the store's payload
  # bytes nor a saved recording's bytes; the name rule is one implementation
  # (in C) shared by capture and `ElixirScope.Redaction.secret_name?/2`.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.{Config, NIF, Recording, Redaction}
  alias ElixirScope.Capture.InstrumentationRuntime, as: RT

  defmodule Creds do
    @moduledoc false
    defstruct [:user, :password]
  end

  @tmp Path.join(System.tmp_dir!(), "es_redaction_test_#{System.unique_integer([:positive])}")

  # {shape, secret}: each secret string is unique so that a grep finds exactly it
  defp corpus do
    s = fn n -> "S3CR3T-#{n}-#{System.unique_integer([:positive])}" end

    [
      {:string_key_capitalised, fn v -> %{"Password" => v} end},
      {:kebab_header_key, fn v -> %{"x-api-key" => v} end},
      {:camel_keyword, fn v -> [apiKey: v] end},
      {:snake_suffix, fn v -> %{db_password: v} end},
      {:secret_key_base, fn v -> %{secret_key_base: v} end},
      {:tagged_3_tuple, fn v -> {:password, v, :x} end},
      {:header_list, fn v -> [{"authorization", "Bearer " <> v}, {"accept", "*/*"}] end},
      {:cookie_header, fn v -> %{"Cookie" => v} end},
      {:struct_field, fn v -> %Creds{user: "ann", password: v} end},
      {:nested_client_secret, fn v -> %{auth: %{client_secret: v}} end},
      {:camel_token, fn v -> %{"accessToken" => v} end},
      {:auth_token_header, fn v -> %{"X-Auth-Token" => v} end},
      {:private_key_keyword, fn v -> [private_key: v] end},
      {:upper_session_id, fn v -> %{"SESSION_ID" => v} end},
      {:deep_keyword, fn v -> %{nested: [%{config: [{:refresh_token, v}]}]} end},
      {:token_tuple, fn v -> {:token, v} end},
      {:csrf, fn v -> %{csrf_token: v} end},
      {:upper_passwd, fn v -> %{"PASSWD" => v} end},
      {:list_under_secret, fn v -> %{api_key: [v, v]} end},
      {:set_cookie_3_tuple, fn v -> {"set-cookie", v, []} end},
      {:closure_env, fn v -> (fn -> %{password: v} end) end},
      {:closure_over_secret_var, fn v -> (fn -> v end) end}
    ]
    |> Enum.with_index(fn {name, make}, i -> {name, make, s.(i)} end)
  end

  defp payload_bytes do
    ElixirScope.flush()
    session = ElixirScope.Capture.Session.info().session
    for tuple <- NIF.query(session, %{}), into: "", do: elem(tuple, 11)
  end

  setup do
    File.mkdir_p!(@tmp)
    on_exit(fn -> File.rm_rf!(@tmp) end)
    start_scope!()
  end

  test "no secret of the corpus reaches the store or a recording file, whatever the event kind" do
    cases = corpus()

    for {name, make, secret} <- cases do
      value = make.(secret)
      cid = RT.report_function_entry(Login, name, [value, "visible-#{name}"], 1)
      RT.report_local_variable_snapshot(cid, [password: secret, x: value], 2)
      RT.report_expression_value(cid, "password", secret, 3)
      RT.report_state_change(cid, :after, %{conn: value}, 4)
      RT.report_message_send(self(), {:login, value})
      RT.report_custom(:audit, value)
      RT.report_function_exit(cid, {:ok, value})
    end

    bytes = payload_bytes()
    # the grep finds what is not secret: it would find the secrets too
    assert bytes =~ "visible-string_key_capitalised"

    for {name, _, secret} <- cases, do: refute(bytes =~ secret, "#{name}: #{secret} is in the store")

    for compressed <- [0, 1] do
      path = Path.join(@tmp, "run-#{compressed}.esrec")
      {:ok, _} = Recording.save(path, :all, compressed: compressed)
      file = File.read!(path)
      if compressed == 0, do: assert(file =~ "visible-kebab_header_key")
      for {name, _, secret} <- cases, do: refute(file =~ secret, "#{name}: #{secret} is in #{path}")
      {:ok, rec} = Recording.load(path, default: false)
      loaded = [] |> ElixirScope.Query.stream(source: rec) |> Enum.map(& &1.payload) |> inspect(limit: :infinity)
      for {name, _, secret} <- cases, do: refute(loaded =~ secret, "#{name}: #{secret} in the loaded recording")
      Recording.close(rec)
    end

    events = ElixirScope.get_events(module: Login, event_type: :call)
    assert length(events) == length(cases)
    # closures are recorded without their environment (so: cut, not redacted)
    for e <- events, do: assert(if(e.function in [:closure_env, :closure_over_secret_var], do: e.truncated?, else: e.redacted?))
  end

  test "compiled code: secret parameters, locals and expressions, in every view and export" do
    secret = "hunter2-#{System.unique_integer([:positive])}"

    src = """
    defmodule ESTest.Redact.Login do
      def authenticate(user, password) do
        pin = String.trim(password)
        String.length(pin) + byte_size(user)
      end

      def connect(opts), do: Keyword.fetch!(opts, :db_password)
    end
    """

    {:ok, ast} = ElixirScope.AST.Transformer.transform_module(Code.string_to_quoted!(src), :full)
    ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast) end)
    mod = ESTest.Redact.Login

    log =
      ExUnit.CaptureLog.capture_log(fn ->
        assert mod.authenticate("ann", " " <> secret <> " ") == String.length(secret) + 3
        assert mod.connect(db_password: secret, host: "db") == secret
        ElixirScope.flush()
      end)

    events = ElixirScope.get_events()
    assert Enum.any?(events, &(&1.function == :authenticate and &1.kind == :call))
    rec = Recording.from_events(events, %{})
    {:ok, web} = ElixirScope.Web.start(port: 0, source: rec)

    web_json =
      try do
        get = fn path ->
          {:ok, {{_, 200, _}, _, body}} = :httpc.request(:get, {~c"#{web.url}#{path}", []}, [], body_format: :binary)
          body
        end

        pages = get.("api/events")
        details = for e <- events, into: "", do: get.("api/event/#{e.id}")
        pages <> details <> get.("api/search?q=authenticate")
      after
        ElixirScope.Web.stop(web)
        Recording.close(rec)
      end

    perfetto = events |> ElixirScope.Export.Perfetto.build() |> ElixirScope.Web.JSON.encode!()
    otlp = events |> ElixirScope.Export.OTLP.build() |> ElixirScope.Web.JSON.encode!()
    report = ElixirScope.Report.render(events)
    iex = ExUnit.CaptureIO.capture_io(fn -> ElixirScope.IEx.print_calls({mod, :authenticate, 2}) end)

    views = [store: payload_bytes(), web: web_json, perfetto: perfetto, otlp: otlp, report: report, iex: iex, log: log]
    # what is not secret is there: the grep would find the secret too
    assert perfetto =~ "ann" and report =~ "ann"
    for {where, text} <- views, do: refute(text =~ secret, "the secret is in #{where}")
  end

  test "allow and deny lists are configurable; :defaults stands for the built-in list" do
    start_scope!(capture: [redact: [:defaults, "*ssn*"], redact_allow: []])
    cid = RT.report_function_entry(Cfg, :f, [%{"user_SSN" => "ssn-1", tokens: "tok-1", name: "kept-1"}], 1)
    [call] = ElixirScope.get_events(call_id: cid)
    assert [%{"user_SSN" => :"[REDACTED]", tokens: :"[REDACTED]", name: "kept-1"}] = call.payload

    start_scope!(capture: [redact: ["only_this"]])
    cid = RT.report_function_entry(Cfg, :f, [%{password: "pw-2", only_this: "x"}], 1)
    [call] = ElixirScope.get_events(call_id: cid)
    assert [%{password: "pw-2", only_this: :"[REDACTED]"}] = call.payload
  end

  test "invalid patterns are refused with a message naming the key and the problem" do
    assert {:error, msg} = Config.validate(capture: [redact: ["pass*word"]])
    assert msg =~ "capture.redact" and msg =~ "'*' may only begin or end"
    assert {:error, msg} = Config.validate(capture: [redact_allow: [String.duplicate("a", 64)]])
    assert msg =~ "capture.redact_allow" and msg =~ "1 to 63 bytes"
    assert {:error, msg} = Config.validate(capture: [redact: [:ok, 42]])
    assert msg =~ "atoms or strings"
    assert {:error, msg} = Config.validate(capture: [redact: :password])
    assert msg =~ "capture.redact"
    assert {:error, msg} = Config.validate(capture: [redact: [:a | :b]])
    assert msg =~ "proper list"
    assert {:error, msg} = Config.validate(capture: [redact: List.duplicate("x", 65)])
    assert msg =~ "at most 64"
  end

  describe "secret_name?/2 (the rule the compiler uses for parameter and variable names)" do
    test "normalised, case-insensitive, patterns, allow list" do
      rules = Redaction.rules(Config.validate!([]))

      for name <- [:password, :Password, "x-api-key", :apiKey, :db_password, :secret_key_base, "Authorization",
                   :access_token, :clientSecret, "SESSION_ID", :user_passwd, :csrf_token] do
        assert Redaction.secret_name?(name, rules), "#{inspect(name)} should be secret"
      end

      for name <- [:user, :pass, :tokens, :max_tokens, :author, :id, :session_count, "", :name] do
        refute Redaction.secret_name?(name, rules), "#{inspect(name)} should not be secret"
      end

      custom = Redaction.rules(capture: [redact: ["pin", "*_ssn"], redact_allow: []])
      assert Redaction.secret_name?(:PIN, custom) and Redaction.secret_name?(:user_ssn, custom)
      refute Redaction.secret_name?(:password, custom)
      assert_raise ArgumentError, ~r/may only begin or end/, fn -> Redaction.rules(redact: ["a*b"]) end
    end

    test "agrees with what capture redacts (one implementation)" do
      rules = Redaction.rules([])
      names = [:password, :Password, :apiKey, :tokens, :user, :secret_key_base, :session, :sessions, :cookie_jar,
               "X-CSRF-Token", "content-type", "Set-Cookie", :authorization, :author]

      for name <- names do
        cid = RT.report_function_entry(Agree, :f, [%{name => "v"}], 1)
        [%{payload: [map]}] = ElixirScope.get_events(call_id: cid)
        assert (map[name] == :"[REDACTED]") == Redaction.secret_name?(name, rules), inspect(name)
      end
    end
  end
end
