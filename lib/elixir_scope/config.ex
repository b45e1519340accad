defmodule ElixirScope.Config do
  @moduledoc """
  Validated configuration. Options come from `{ElixirScope, opts}`, from
  `ElixirScope.start/1`, or from `config :elixir_scope, ...`; explicit options win.
  An unknown key or a wrong type is an error that names the key and what was expected.

      capture: [buffer_size: 65_536, overflow: :drop_newest, max_wait_us: 200, batch_size: 10_000, flush_interval: 5,
                writers: 2, lifecycle: true, max_depth: 8, max_width: 32, max_binary: 256, max_payload_bytes: 4096,
                redact: ["*password*", ...], redact_allow: ["tokens", ...], fuse: [max_full_ms: 2_000, max_drop_ratio: 0.5, min_events: 10_000]]
      storage: [max_bytes: 512 MiB, segment_events: 65_536]
      recording: [max_new_atoms: 50_000, max_chunk_bytes: 16 MiB, max_total_bytes: 2 GiB, max_ratio: 200,
                  source_context: 3, max_source_bytes: 1 MiB]
      max_memory: 1 GiB   # ring + store (see ElixirScope.Capture.Memory); 0 = unbounded
      ai: [llm_provider: :heuristic, ...]   ast: [default_instrumentation_level: :function_boundaries, ...]
      web: [port: 4040, ip: {127, 0, 0, 1}, token: nil, hosts: []]
      cluster: [nodes: nil | :connected | [node()], clock_interval: 5_000, collect_interval: 0, timeout: 5_000,
                snapshot_ttl: 1_000]   # see ElixirScope.Cluster
      enabled: true
  """

  alias ElixirScope.Redaction

  @schema [
    enabled: {:boolean, true},
    name: {:atom, ElixirScope},
    max_memory: {:non_neg_integer, 1024 * 1024 * 1024},
    capture: [
      buffer_size: {:pow2, 65_536},
      overflow: {{:one_of, [:drop_newest, :overwrite_oldest]}, :drop_newest},
      max_wait_us: {:non_neg_integer, 200},
      batch_size: {:pos_integer, 10_000},
      flush_interval: {:pos_integer, 5},
      writers: {:pos_integer, 2},
      lifecycle: {:boolean, true},
      max_depth: {:pos_integer, 8},
      max_width: {:pos_integer, 32},
      max_binary: {:non_neg_integer, 256},
      max_payload_bytes: {:pos_integer, 4096},
      redact: {:deny_patterns, Redaction.default_deny()},
      redact_allow: {:allow_patterns, Redaction.default_allow()},
      fuse: [
        enabled: {:boolean, true},
        max_full_ms: {:pos_integer, 2_000},
        max_drop_ratio: {:ratio, 0.5},
        min_events: {:pos_integer, 10_000},
        check_interval: {:pos_integer, 100}
      ]
    ],
    storage: [
      max_bytes: {:non_neg_integer, 512 * 1024 * 1024},
      segment_events: {:pos_integer, 65_536}
    ],
    # what ElixirScope.Recording.load/2 accepts from a file (see its docs)
    recording: [
      max_new_atoms: {:non_neg_integer, 50_000},
      max_chunk_bytes: {:pos_integer, 16 * 1024 * 1024},
      max_total_bytes: {:pos_integer, 2 * 1024 * 1024 * 1024},
      max_ratio: {:pos_integer, 200},
      # what Recording.save/3 keeps of the recorded code's source (see ElixirScope.Recording.Sources)
      source_context: {:non_neg_integer, 3},
      max_source_bytes: {:non_neg_integer, 1024 * 1024}
    ],
    ai: [
      llm_provider: {{:one_of, [:gemini, :vertex, :openai_compatible, :mock, :heuristic, :auto]}, :auto},
      api_key: {:secret, nil},
      model: {:any, nil},
      base_url: {:any, nil},
      project_id: {:any, nil},
      location: {:any, nil},
      credentials_file: {:any, nil},
      analysis_timeout: {:pos_integer, 30_000},
      planning_timeout: {:pos_integer, 60_000},
      max_retries: {:non_neg_integer, 3},
      max_request_bytes: {:pos_integer, 200_000},
      max_response_bytes: {:pos_integer, 2_000_000},
      strategy: {{:one_of, [:minimal, :balanced, :full]}, :balanced}
    ],
    ast: [
      default_instrumentation_level:
        {{:one_of, [:none, :function_boundaries, :expressions, :locals, :full]}, :function_boundaries},
      include: {:list, []},
      exclude: {:list, []},
      plan_file: {:any, ".elixir_scope/plan.exs"},
      instrument_macros: {:boolean, false},
      # clause bodies of at most this many abstract-format nodes get an uninstrumented copy run
      # while capture is off (docs/ast_transformer.md, "Capture off"); 0 = none
      off_copy: {:non_neg_integer, 0}
    ],
    # ElixirScope.Cluster: started with ElixirScope when nodes is set
    cluster: [
      nodes: {:cluster_nodes, nil},
      clock_interval: {:pos_integer, 5_000},
      collect_interval: {:non_neg_integer, 0},
      timeout: {:pos_integer, 5_000},
      snapshot_ttl: {:non_neg_integer, 1_000}
    ],
    web: [
      enabled: {:boolean, false},
      port: {:non_neg_integer, 4040},
      ip: {:any, {127, 0, 0, 1}},
      token: {:any, nil},
      hosts: {:host_list, []}
    ]
  ]

  alias ElixirScope.AI.LLM.Secret

  @type t :: keyword()

  @doc "The default deny patterns of redaction (see `ElixirScope.Redaction`)."
  @spec default_redact() :: [String.t()]
  def default_redact, do: Redaction.default_deny()

  @doc """
  Validates `opts` merged over the application environment and the defaults.
  Returns `{:ok, config}` with every key filled in, or `{:error, message}`.
  """
  @spec validate(keyword()) :: {:ok, t()} | {:error, String.t()}
  def validate(opts) when is_list(opts) do
    env = Application.get_all_env(:elixir_scope) |> Keyword.take(Keyword.keys(@schema))

    with :ok <- keyword?(opts, "options"),
         {:ok, from_env} <- check(@schema, env, []),
         {:ok, explicit} <- check(@schema, opts, []),
         config = deep_merge(fill(@schema), deep_merge(from_env, explicit)),
         :ok <- ElixirScope.Capture.Memory.check(config) do
      # the key travels only inside its wrapper (child specs, process states, logs)
      {:ok, update_in(config, [:ai, :api_key], &Secret.wrap/1)}
    end
  end

  def validate(other), do: {:error, "ElixirScope options must be a keyword list, got: #{shown(other)}"}

  @doc "Like `validate/1` but raises `ArgumentError`."
  @spec validate!(keyword()) :: t()
  def validate!(opts) do
    case validate(opts) do
      {:ok, config} -> config
      {:error, message} -> raise ArgumentError, message
    end
  end

  @doc "The options map handed to `ElixirScope.NIF.session_new/1`."
  @spec session_options(t()) :: map()
  def session_options(config) do
    capture = config[:capture]
    storage = config[:storage]
    rules = Redaction.rules(capture)

    %{
      ring_capacity: capture[:buffer_size],
      overflow: capture[:overflow],
      ring_max_wait_ns: capture[:max_wait_us] * 1_000,
      max_depth: capture[:max_depth],
      max_width: capture[:max_width],
      max_binary: capture[:max_binary],
      max_bytes: max(capture[:max_payload_bytes], 64),
      redact: rules.deny,
      redact_allow: rules.allow,
      ring_payload_budget: ElixirScope.Capture.Memory.ring_payload_budget(config),
      store_max_bytes: ElixirScope.Capture.Memory.store_max_bytes(config),
      segment_events: storage[:segment_events]
    }
  end

  defp keyword?(opts, where, key \\ nil) do
    if Keyword.keyword?(opts),
      do: :ok,
      else: {:error, "#{where} must be a keyword list, got: #{{key, opts} |> scrub() |> elem(1) |> shown()}"}
  end

  defp check(schema, opts, path) do
    Enum.reduce_while(opts, {:ok, []}, fn {key, value}, {:ok, acc} ->
      case Keyword.fetch(schema, key) do
        :error ->
          known = schema |> Keyword.keys() |> Enum.map_join(", ", &inspect/1)
          {:halt, {:error, "unknown ElixirScope option #{name(path, key)}; known keys here: #{known}"}}

        {:ok, sub} when is_list(sub) ->
          with :ok <- keyword?(value, name(path, key), key),
               {:ok, checked} <- check(sub, value, path ++ [key]) do
            {:cont, {:ok, [{key, checked} | acc]}}
          else
            error -> {:halt, error}
          end

        {:ok, {type, _default}} ->
          case problem(type, value) do
            nil ->
              {:cont, {:ok, [{key, value} | acc]}}

            why ->
              got = if type == :secret, do: "a value that is not shown", else: shown(value)
              {:halt, {:error, "ElixirScope option #{name(path, key)} must be #{describe(type)}, got: #{got}#{why}"}}
          end
      end
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      error -> error
    end
  end

  defp name(path, key), do: (path ++ [key]) |> Enum.map_join(".", &Atom.to_string/1)

  # nil when value is valid for type, else "" or ": what is wrong"
  defp problem(type, value) when type in [:deny_patterns, :allow_patterns] do
    defaults = if type == :deny_patterns, do: Redaction.default_deny(), else: Redaction.default_allow()
    list = Redaction.expand(value, defaults)
    checked = if type == :deny_patterns, do: Redaction.check(list, []), else: Redaction.check([], list)

    case checked do
      :ok -> nil
      {:error, message} -> ": " <> message
    end
  end

  defp problem(type, value), do: if(valid?(type, value), do: nil, else: "")

  defp valid?(:boolean, v), do: is_boolean(v)
  defp valid?(:atom, v), do: is_atom(v)
  defp valid?(:any, _), do: true
  defp valid?(:secret, v), do: is_nil(v) or is_binary(v) or is_struct(v, Secret)
  defp valid?(:list, v), do: is_list(v)
  defp valid?(:pos_integer, v), do: is_integer(v) and v > 0
  defp valid?(:non_neg_integer, v), do: is_integer(v) and v >= 0
  defp valid?(:ratio, v), do: is_number(v) and v > 0 and v <= 1
  # the upper bound (and its memory) is ElixirScope.Capture.Memory's
  defp valid?(:pow2, v), do: is_integer(v) and v >= 2 and Bitwise.band(v, v - 1) == 0
  defp valid?({:one_of, values}, v), do: v in values
  defp valid?(:host_list, v), do: ElixirScope.Web.Hosts.valid_list?(v)
  defp valid?(:cluster_nodes, v), do: v in [nil, :connected] or (is_list(v) and v != [] and Enum.all?(v, &is_atom/1))

  defp describe(:boolean), do: "a boolean"
  defp describe(:atom), do: "an atom"
  defp describe(:list), do: "a list"
  defp describe(:pos_integer), do: "a positive integer"
  defp describe(:non_neg_integer), do: "a non-negative integer"
  defp describe(:ratio), do: "a number in (0, 1]"
  defp describe(:pow2), do: "a power of two between 2 and 4194304 (2^22)"
  defp describe(:secret), do: "a string or nil"
  defp describe({:one_of, values}), do: "one of " <> Enum.map_join(values, ", ", &inspect/1)
  defp describe(:cluster_nodes), do: "nil, :connected or a non-empty list of node names"
  defp describe(:host_list), do: ~s(a list of at most 64 "name" or "name:port" strings)

  defp describe(t) when t in [:deny_patterns, :allow_patterns],
    do: "a list of at most 64 names or patterns (atoms or strings of 1 to 63 bytes, `*` only at the start or end; " <>
          ":defaults for the built-in list)"
  defp describe(:any), do: "any term"

  # Error messages show the offending value, but never what sits under a secret key
  # (nor the whole :ai section when it is malformed).
  defp shown(value), do: inspect(scrub(value), limit: 20, printable_limit: 200)

  defp scrub({k, _}) when k in [:api_key, :token, :ai], do: {k, :"[not shown]"}
  defp scrub(list) when is_list(list), do: scrub_list(list)
  defp scrub(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> scrub_list() |> List.to_tuple()
  defp scrub(%Secret{} = s), do: s
  defp scrub(map) when is_map(map), do: Map.new(map, fn {k, v} -> scrub({k, v}) end)
  defp scrub(other), do: other

  defp scrub_list([h | t]), do: [scrub(h) | scrub_list(t)]
  defp scrub_list([]), do: []
  defp scrub_list(tail), do: scrub(tail)

  defp fill(schema) do
    Enum.map(schema, fn
      {key, sub} when is_list(sub) -> {key, fill(sub)}
      {key, {_type, default}} -> {key, default}
    end)
  end

  defp deep_merge(base, over) do
    Keyword.merge(base, over, fn
      _key, a, b when is_list(a) and is_list(b) -> if Keyword.keyword?(a) and a != [], do: deep_merge(a, b), else: b
      _key, _a, b -> b
    end)
  end
end
