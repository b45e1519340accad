defmodule ElixirScope.Test.CompilerProject do
  @moduledoc """
  A generated Mix project that uses this repository as a path dependency and the `:elixir_scope`
  compiler, for the compiler's end-to-end tests. Commands run in a subprocess with MIX_ENV=dev; the
  project lives under this repo's `_build` so its dependency build is reused between test runs.
  """

  @app_files %{
    "config/config.exs" => ~S"""
    import Config
    config :elixir_scope, ast: [default_instrumentation_level: :full, exclude: [CtApp.Plain]]
    config :logger, level: :warning
    """,
    "lib/ct_app/shape.ex" => ~S"""
    defmodule CtApp.Shape do
      @moduledoc false
      defstruct [:w, :h]

      defmacro area(shape) do
        quote do
          s = unquote(shape)
          s.w * s.h
        end
      end
    end
    """,
    "lib/ct_app/user.ex" => ~S"""
    defmodule CtApp.User do
      @moduledoc false
      require CtApp.Shape
      alias CtApp.Shape

      def square(side), do: %Shape{w: side, h: side}
      def area_of(side), do: Shape.area(square(side))
    end
    """,
    "lib/ct_app/counter.ex" => ~S"""
    defmodule CtApp.Counter do
      @moduledoc false
      use GenServer

      def start_link(initial), do: GenServer.start_link(__MODULE__, initial)
      def add(pid, n), do: GenServer.call(pid, {:add, n})

      @impl true
      def init(initial), do: {:ok, %{total: initial}}

      @impl true
      def handle_call({:add, n}, _from, state) do
        total = state.total + n
        {:reply, total, %{state | total: total}}
      end
    end
    """,
    "lib/ct_app/math.ex" => ~S"""
    defmodule CtApp.Math do
      @moduledoc false
      def fact(0), do: 1
      def fact(n) when n > 0, do: n * fact(n - 1)

      def boom(x) do
        doubled = x * 2
        raise ArgumentError, "boom #{doubled}"
      end
    end
    """,
    "lib/ct_app/describe.ex" => ~S"""
    defprotocol CtApp.Describe do
      def describe(thing)
    end

    defimpl CtApp.Describe, for: CtApp.Shape do
      def describe(%{w: w, h: h}), do: "#{w}x#{h}"
    end
    """,
    "lib/ct_app/builder.ex" => ~S"""
    defmodule CtApp.Builder do
      @moduledoc false
      # Library-style code that defines modules while the project compiles: neither module
      # below exists in any source file.
      def define(name, value) do
        contents =
          quote do
            def value, do: unquote(value)
            def twice, do: value() * 2
          end

        Module.create(name, contents, Macro.Env.location(__ENV__))
      end

      def define_parser(name) do
        defmodule name do
          def parse(s), do: String.split(s, ",")
        end
      end
    end

    defmodule CtApp.Generated do
      @moduledoc false
      CtApp.Builder.define(CtApp.Generated.Answer, 21)
      CtApp.Builder.define_parser(CtApp.Generated.Parser)
      def answer, do: CtApp.Generated.Answer.twice()
    end
    """,
    "lib/ct_app/plain.ex" => ~S"""
    defmodule CtApp.Plain do
      @moduledoc false
      def hello(name), do: "hello #{name}"
    end
    """,
    "run.exs" => ~S"""
    :ok = ElixirScope.start()
    120 = CtApp.Math.fact(5)
    25 = CtApp.User.area_of(5)
    "5x5" = CtApp.Describe.describe(CtApp.User.square(5))
    {:ok, pid} = CtApp.Counter.start_link(10)
    15 = CtApp.Counter.add(pid, 5)
    "hello x" = CtApp.Plain.hello("x")
    42 = CtApp.Generated.answer()
    ["a", "b"] = CtApp.Generated.Parser.parse("a,b")

    frame =
      try do
        CtApp.Math.boom(21)
      rescue
        ArgumentError -> Enum.find(__STACKTRACE__, fn {m, _, _, _} -> m == CtApp.Math end)
      end

    ElixirScope.flush()
    events = ElixirScope.get_events()
    result = %{events: events, frame: frame, counter: pid}
    IO.puts("RESULT:" <> Base.encode64(:erlang.term_to_binary(result)))
    """
  }

  @doc "Creates (or refreshes) the project; returns its directory."
  @spec create!() :: String.t()
  def create! do
    dir = Path.join(Mix.Project.build_path() |> Path.dirname(), "compiler_test_project")
    File.mkdir_p!(dir)

    for sub <- ["lib", "config", ".elixir_scope", "_build/dev/lib/ct_app"],
        do: File.rm_rf!(Path.join(dir, sub))

    File.write!(Path.join(dir, "mix.exs"), mix_exs())
    Enum.each(@app_files, fn {path, content} -> write!(dir, path, content) end)
    dir
  end

  @doc "Writes a file of the project (creating directories)."
  @spec write!(String.t(), String.t(), String.t()) :: :ok
  def write!(dir, path, content) do
    full = Path.join(dir, path)
    File.mkdir_p!(Path.dirname(full))
    # Mix sees an edit by its mtime (in seconds) being newer than its last compile's
    Process.sleep(1_100)
    File.write!(full, content)
  end

  @doc "The original content of a generated file."
  @spec original(String.t()) :: String.t()
  def original(path), do: Map.fetch!(@app_files, path)

  @doc "Runs `mix args` in the project; returns {output, exit_status}. `env` adds variables."
  @spec mix(String.t(), [String.t()], [{String.t(), String.t()}]) ::
          {String.t(), non_neg_integer()}
  def mix(dir, args, env \\ []) do
    # ERL_COMPILER_OPTIONS: the transform installed in this VM by tests that instrument by hand
    # (ElixirScope.AST.Transformer) is not the subprocess's business
    base = [{"MIX_ENV", "dev"}, {"MIX_BUILD_PATH", nil}, {"MIX_EXS", nil}, {"MIX_TARGET", nil}, {"ERL_COMPILER_OPTIONS", nil}]
    System.cmd("mix", args, cd: dir, env: base ++ env, stderr_to_stdout: true)
  end

  @doc "Runs run.exs and decodes the map it prints."
  @spec run_script!(String.t()) :: map()
  def run_script!(dir) do
    {out, status} = mix(dir, ["run", "run.exs"])

    case Regex.run(~r/RESULT:([A-Za-z0-9+\/=]+)/, out) do
      [_, b64] when status == 0 -> b64 |> Base.decode64!() |> :erlang.binary_to_term()
      _ -> raise "run.exs failed (#{status}):\n#{out}"
    end
  end

  defp mix_exs do
    repo = File.cwd!()

    ~s"""
    defmodule CtApp.MixProject do
      use Mix.Project

      def project do
        [
          app: :ct_app,
          version: "0.1.0",
          elixir: "~> 1.14",
          compilers: if(System.get_env("CT_PLAIN"), do: Mix.compilers(), else: [:elixir_scope] ++ Mix.compilers()),
          deps: [{:elixir_scope, path: #{inspect(repo)}}]
        ]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """
  end
end
