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
  `scope: false` leaves ElixirScope's code out of its path; `control: :tcp` controls it over its
  own TCP connection instead of the distribution, so that it survives being cut off
  (`cut_off/2`). `{:ok, peer, node}`.
  """
  @spec start_peer(atom(), keyword()) :: {:ok, pid(), node()} | {:error, term()}
  def start_peer(name, opts \\ []) do
    paths = :code.get_path()
    paths = if Keyword.get(opts, :scope, true), do: paths, else: Enum.reject(paths, &scope_path?/1)
    # a peer stopping must not make the others disconnect from each other
    args = [~c"-kernel", ~c"prevent_overlapping_partitions", ~c"false" | Enum.flat_map(paths, &[~c"-pa", &1])]

    control = if opts[:control] == :tcp, do: %{connection: 0}, else: %{}

    with {:ok, peer, node} <- :peer.start_link(Map.merge(%{name: name, host: ~c"127.0.0.1", longnames: true, args: args}, control)) do
      {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:elixir])
      {:ok, peer, node}
    end
  end

  defp scope_path?(path), do: List.to_string(path) =~ ~r{/elixir_scope/ebin$}

  @doc """
  A netsplit between this node and the peer (started with `control: :tcp`): the peer refuses
  this node (another cookie for it) and the connection is dropped. `heal/2` undoes it.
  """
  @spec cut_off(pid(), node()) :: :ok
  def cut_off(peer, node) do
    true = :peer.call(peer, :erlang, :set_cookie, [node(), :"es_cut_off_#{System.unique_integer([:positive])}"])
    true = Node.disconnect(node)
    :ok
  end

  @doc "Ends a `cut_off/2`: the peer accepts this node again, which connects."
  @spec heal(pid(), node()) :: :ok
  def heal(peer, node) do
    true = :peer.call(peer, :erlang, :set_cookie, [node(), :erlang.get_cookie()])
    true = Node.connect(node)
    :ok
  end

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
