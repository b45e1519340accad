defmodule ElixirScope.NIF do
  @moduledoc """
  The native functions (priv/elixir_scope_nif.so). Thin stubs only: the
  Elixir faces are `ElixirScope.Capture.Ingestor`, `ElixirScope.Capture.RingBuffer`
  and `ElixirScope.Storage.DataAccess`. Every NIF validates its arguments and
  raises `ArgumentError` with a message on bad input.
  """
  @on_load :load_nif
  @compile {:autoload, false}

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:elixir_scope), ~c"elixir_scope_nif")

    case :erlang.load_nif(path, 0) do
      :ok -> :ok
      {:error, {:reload, _}} -> :ok
      {:error, reason} -> raise "ElixirScope: could not load the NIF from #{path}: #{inspect(reason)} (run `make nif`)"
    end
  end

  defp nif_missing, do: :erlang.nif_error(:elixir_scope_nif_not_loaded)

  # capture core
  @spec session_new(map()) :: reference()
  def session_new(_opts), do: nif_missing()
  @spec session_install(reference()) :: :ok
  def session_install(_session), do: nif_missing()
  @spec session_uninstall() :: :ok
  def session_uninstall, do: nif_missing()
  @spec set_enabled(reference(), boolean()) :: :ok
  def set_enabled(_session, _on), do: nif_missing()
  @spec emit_entry(module(), atom(), list(), non_neg_integer()) :: pos_integer() | nil
  def emit_entry(_module, _function, _args, _line), do: nif_missing()
  @spec emit_exit(pos_integer(), term()) :: :ok
  def emit_exit(_call_id, _value), do: nif_missing()
  @spec emit_pre(pos_integer(), non_neg_integer(), {:before, term()} | nil, {term(), map()} | nil) :: :ok
  def emit_pre(_call_id, _line, _state_payload, _receive_payload), do: nif_missing()
  @spec emit_callback_exit(pos_integer(), term(), {:after, term()} | nil, non_neg_integer()) :: :ok
  def emit_callback_exit(_call_id, _value, _state_payload, _line), do: nif_missing()
  @spec emit(atom(), non_neg_integer() | nil, atom(), atom(), non_neg_integer() | nil, non_neg_integer(),
               non_neg_integer() | nil, term()) :: pos_integer() | nil
  def emit(_kind, _call_id, _module, _function, _arity, _line, _link, _payload), do: nif_missing()
  # what instrumented code calls for a :local snapshot, an :expr value or a :tail_call of a
  # recorded call: emit/8's event (no module, function, arity or link), with fewer arguments
  @spec emit_value(:local | :expr | :tail_call, pos_integer(), non_neg_integer(), term()) :: :ok
  def emit_value(_kind, _call_id, _line, _payload), do: nif_missing()
  @spec emit_as(pid(), :spawn | :exit, atom(), pos_integer() | nil, term()) :: pos_integer() | nil
  def emit_as(_pid, _kind, _function, _ts, _payload), do: nif_missing()
  @spec pids_since(reference(), non_neg_integer()) ::
          {non_neg_integer(), [{pid(), non_neg_integer(), non_neg_integer()}]}
  def pids_since(_session, _after_id), do: nif_missing()
  @spec drain(reference(), pos_integer()) :: non_neg_integer()
  def drain(_session, _max), do: nif_missing()
  @spec query(reference(), map()) :: [tuple()]
  def query(_session, _filters), do: nif_missing()
  @spec query_events(reference(), map(), {integer(), integer()} | nil) :: {[ElixirScope.Event.t()], non_neg_integer()}
  def query_events(_session, _filters, _clock), do: nif_missing()
  @spec query_call_trees(reference(), map(), {{integer(), integer()} | nil, map(), map(), non_neg_integer()} | :words) ::
          {[{pid(), [map()]}], non_neg_integer()} | {non_neg_integer(), non_neg_integer()}
  def query_call_trees(_session, _filters, _clock_and_shapes), do: nif_missing()
  @spec call_trees([ElixirScope.Event.t()], :by_pid | :roots | :open_calls) :: [{pid(), [tuple()]}] | [non_neg_integer()]
  def call_trees(_events, _mode), do: nif_missing()
  @spec get_event(reference(), non_neg_integer()) :: tuple() | nil
  def get_event(_session, _id), do: nif_missing()
  @spec clear(reference()) :: :ok
  def clear(_session), do: nif_missing()
  @spec stats(reference()) :: map()
  def stats(_session), do: nif_missing()
  @spec encode(reference(), term()) :: {binary(), non_neg_integer()}
  def encode(_session, _term), do: nif_missing()
  @spec redact_check([atom() | binary()], [atom() | binary()]) :: :ok | {:error, String.t()}
  def redact_check(_deny, _allow), do: nif_missing()
  @spec redact_secret_name(atom() | binary(), [atom() | binary()], [atom() | binary()]) :: boolean()
  def redact_secret_name(_name, _deny, _allow), do: nif_missing()
  @spec now() :: non_neg_integer()
  def now, do: nif_missing()
  @spec noop() :: :ok
  def noop, do: nif_missing()
  @spec switch_mode() :: 0 | 1 | 2
  def switch_mode, do: nif_missing()
  @spec set_switch_mode(0 | 1 | 2) :: :ok
  def set_switch_mode(_mode), do: nif_missing()

  # component glue (appended by component owners)

  # ---- llm (issue 5) ----
  @doc "Performs one HTTP(S) request with libcurl on a dirty IO scheduler."
  @spec llm_http_request(String.t() | atom, String.t(), [{String.t(), String.t()}], iodata, map) ::
          {:ok, non_neg_integer, [{String.t(), String.t()}], binary} | {:error, atom, String.t()}
  def llm_http_request(_method, _url, _headers, _body, _opts), do: nif_missing()
  @doc "Decodes JSON into maps with binary keys, lists, binaries, numbers, booleans and nil."
  @spec json_decode(binary) :: {:ok, term} | {:error, String.t()}
  def json_decode(_json), do: nif_missing()
  @doc "Encodes maps, lists, binaries, numbers, booleans, nil and atoms as JSON."
  @spec json_encode(term) :: binary
  def json_encode(_term), do: nif_missing()
  @doc "Builds a Gemini generateContent request body."
  @spec llm_build_gemini_request(String.t() | nil, String.t(), boolean, number, non_neg_integer) :: binary
  def llm_build_gemini_request(_system, _user, _plan_schema, _temperature, _max_tokens), do: nif_missing()
  @doc "Builds an OpenAI-compatible chat-completions request body."
  @spec llm_build_openai_request(String.t(), String.t() | nil, String.t(), boolean, number, non_neg_integer) ::
          binary
  def llm_build_openai_request(_model, _system, _user, _json_mode, _temperature, _max_tokens), do: nif_missing()
  @doc "Extracts the model's text from a Gemini/Vertex or OpenAI response body."
  @spec llm_extract_text(:gemini | :openai, binary) :: {:ok, String.t()} | {:error, atom, String.t()}
  def llm_extract_text(_format, _body), do: nif_missing()
  @doc "Parses and checks a plan answer (JSON text) into an intermediate map."
  @spec llm_parse_plan(binary) :: {:ok, map} | {:error, atom, String.t()}
  def llm_parse_plan(_text), do: nif_missing()
  @doc "The JSON responseSchema of a plan answer."
  @spec llm_plan_schema() :: binary
  def llm_plan_schema, do: nif_missing()

  # ---- the forms transformer ----
  @doc """
  Instruments a module's Erlang abstract forms (ETF) with a plan (ETF) built by
  `ElixirScope.Compiler.ParseTransform`; runs on a dirty CPU scheduler.
  """
  @spec forms_transform(binary(), binary()) :: {:ok, [tuple()]} | {:error, term()}
  def forms_transform(_forms_etf, _plan_etf), do: nif_missing()

  # ---- recording files, version 3 (ElixirScope.Recording.Native) ----
  @doc """
  Writes the segments of a session's (or loaded recording's) events matching `filters` to
  `path`: `{writer, count, [{module, line}], [atom name]}` (lines and atoms for the metadata).
  """
  @spec recording_save(reference(), binary(), map()) ::
          {reference(), non_neg_integer(), [{atom(), non_neg_integer()}], [binary()]} | {:error, String.t()}
  def recording_save(_source, _path, _filters), do: nif_missing()
  @doc "Writes the metadata and trailer, syncs and closes the file."
  @spec recording_save_end(reference(), binary()) :: :ok | {:error, String.t()}
  def recording_save_end(_writer, _meta), do: nif_missing()
  @doc "Reads and checks a file into a store: `{:ok, recording, meta, atom names, exports}`."
  @spec recording_open(binary(), non_neg_integer()) ::
          {:ok, reference(), binary(), [binary()], [{non_neg_integer(), non_neg_integer(), arity()}]} | {:error, String.t()}
  def recording_open(_path, _max_bytes), do: nif_missing()
  @doc "Turns a loaded recording's pids and atoms into terms (after its atoms were admitted)."
  @spec recording_ready(reference()) :: :ok | {:error, String.t()}
  def recording_ready(_recording), do: nif_missing()
  @doc "Events of a loaded recording matching store filters (the tuples of `query/2`)."
  @spec recording_query(reference(), map()) :: [tuple()]
  def recording_query(_recording, _filters), do: nif_missing()
  @doc "One event of a loaded recording, or nil."
  @spec recording_query_call_trees(reference(), map(), {{integer(), integer()} | nil, map(), map(), non_neg_integer()} | :words) ::
          {[{pid(), [map()]}], non_neg_integer()} | {non_neg_integer(), non_neg_integer()}
  def recording_query_call_trees(_recording, _filters, _clock_and_shapes), do: nif_missing()
  @spec recording_get(reference(), non_neg_integer()) :: tuple() | nil
  def recording_get(_recording, _id), do: nif_missing()
  @doc "`{events, first_id, last_id, bytes_used, pids}` of a loaded recording."
  @spec recording_info(reference()) :: {non_neg_integer(), non_neg_integer(), non_neg_integer(), non_neg_integer(), [pid()]}
  def recording_info(_recording), do: nif_missing()
end
