defmodule Fidelity.Router do
  @moduledoc """
  A Plug.Router-like DSL: `get/post "/path/:param"` accumulate routes in a module attribute and
  `@before_compile` turns them into clauses of `match/3` with binary-free list patterns.
  """

  defmacro __using__(_opts) do
    quote do
      import Fidelity.Router, only: [get: 2, post: 2, forward: 2]
      Module.register_attribute(__MODULE__, :routes, accumulate: true)
      @before_compile Fidelity.Router
    end
  end

  defmacro get(path, do: body), do: route(:get, path, body)
  defmacro post(path, do: body), do: route(:post, path, body)

  defmacro forward(prefix, to: router) do
    segments = split(prefix)

    quote do
      def match(method, unquote(segments) ++ rest, conn),
        do: unquote(router).match(method, rest, conn)
    end
  end

  defp route(method, path, body) do
    {pattern, binding} = compile_path(path)

    quote do
      @routes {unquote(method), unquote(path)}
      def match(unquote(method), unquote(pattern), var!(conn)) do
        var!(params) = Map.merge(var!(conn).params, Map.new(unquote(binding)))
        _ = var!(params)
        unquote(body)
      end
    end
  end

  defp compile_path(path) do
    split(path)
    |> Enum.map_reduce([], fn
      ":" <> name, binding ->
        var = Macro.var(String.to_atom(name), nil)
        {var, [{name, var} | binding]}

      segment, binding ->
        {segment, binding}
    end)
  end

  defp split(path), do: String.split(path, "/", trim: true)

  defmacro __before_compile__(env) do
    routes = env.module |> Module.get_attribute(:routes) |> Enum.reverse()

    quote do
      def match(method, path, _conn), do: {:not_found, method, Enum.join(path, "/")}
      def routes, do: unquote(Macro.escape(routes))
    end
  end

  def call(router, method, path, params \\ %{}) do
    router.match(method, String.split(path, "/", trim: true), %{params: params, assigns: %{}})
  end
end

defmodule Fidelity.Router.Admin do
  @moduledoc false
  use Fidelity.Router

  get "/stats" do
    {:ok, :stats, map_size(params)}
  end

  get "/users/:id/ban" do
    {:ok, :banned, String.to_integer(params["id"])}
  end
end

defmodule Fidelity.Router.App do
  @moduledoc false
  use Fidelity.Router

  get "/" do
    {:ok, :home}
  end

  get "/users/:id" do
    case Integer.parse(params["id"]) do
      {id, ""} when id > 0 -> {:ok, :user, id}
      _ -> {:error, :bad_id, params["id"]}
    end
  end

  get "/users/:id/posts/:post" do
    {:ok, :post, params["id"], params["post"], conn.assigns}
  end

  post "/echo" do
    {:ok, :echo, params}
  end

  forward("/admin", to: Fidelity.Router.Admin)
end
