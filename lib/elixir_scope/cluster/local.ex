defmodule ElixirScope.Cluster.Local do
  @moduledoc """
  Local nodes on 127.0.0.1, started with OTP's `:peer`, for the cluster demo, tests and bench:
  this VM made distributed (epmd started if needed), peers started with this VM's code paths
  (or without ElixirScope's, to see how a node without it is reported), modules loaded on them.
  Nothing here is needed to record a real cluster.
  """

  @doc "Makes this VM a distributed node named `name` (long names, 127.0.0.1) unless it is one already."
  @spec ensure_distributed(atom()) :: :ok | {:error, term()}
  def ensure_distributed(name) do
    if node() != :nonode@nohost do
      :ok
    else
      _ = System.cmd("epmd", ["-daemon"], stderr_to_stdout: true)

      case :net_kernel.start([:"#{name}@127.0.0.1", :longnames]) do
        {:ok, _} -> :ok
        {:error, {:already_started, _}} -> :ok
        error -> error
      end
    end
  end

  @doc """
  Starts a peer node `name@127.0.0.1` linked to the caller, with Elixir running. Options:
  `scope: false` leaves ElixirScope's code out of its path. `{:ok, peer, node}`.
  """
  @spec start_peer(atom(), keyword()) :: {:ok, pid(), node()} | {:error, term()}
  def start_peer(name, opts \\ []) do
    paths = :code.get_path()
    paths = if Keyword.get(opts, :scope, true), do: paths, else: Enum.reject(paths, &scope_path?/1)
    # a peer stopping must not make the others disconnect from each other
    args = [~c"-kernel", ~c"prevent_overlapping_partitions", ~c"false" | Enum.flat_map(paths, &[~c"-pa", &1])]

    with {:ok, peer, node} <- :peer.start_link(%{name: name, host: ~c"127.0.0.1", longnames: true, args: args}) do
      {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:elixir])
      {:ok, peer, node}
    end
  end

  defp scope_path?(path), do: List.to_string(path) =~ ~r{/elixir_scope/ebin$}

  @doc "Compiles the modules of the file at `path` instrumented at `level` in this VM: `[{module, binary}]` to `load/2`."
  @spec compile_instrumented(Path.t(), atom()) :: [{module(), binary()}]
  def compile_instrumented(path, level) do
    ast = path |> File.read!() |> Code.string_to_quoted!(file: path)
    {:ok, ast} = ElixirScope.AST.Transformer.transform_module(ast, level)
    Code.compile_quoted(ast, path)
  end

  @doc "Loads compiled modules (`[{module, binary}]`) on every node of `nodes`."
  @spec load(list(node()), [{module(), binary()}]) :: :ok
  def load(nodes, modules) do
    for n <- nodes, {mod, bin} <- modules do
      {:module, ^mod} = :erpc.call(n, :code, :load_binary, [mod, ~c"#{mod}.beam", bin])
    end

    :ok
  end
end
