defmodule Fidelity.Loops.Macros do
  @moduledoc """
  Control-flow macros of the kind libraries define (retry helpers, state machines, guards):
  each expands to `case`, `cond`, `if`, `with`, `receive` or to another of these macros, so a
  call in tail position of the caller lands in tail position of the expansion.
  """

  defmacro my_case(expr, do: clauses), do: quote(do: case(unquote(expr), do: unquote(clauses)))

  defmacro my_cond(do: clauses), do: quote(do: cond(do: unquote(clauses)))

  defmacro when_zero(n, then, otherwise) do
    quote do
      if unquote(n) == 0, do: unquote(then), else: unquote(otherwise)
    end
  end

  defmacro unless_done(n, do: body, else: done) do
    quote do
      Fidelity.Loops.Macros.when_zero(unquote(n), unquote(done), unquote(body))
    end
  end

  defmacro with_positive(n, do: body, else: other) do
    quote do
      with m when is_integer(m) and m > 0 <- unquote(n) do
        unquote(body)
      else
        _ -> unquote(other)
      end
    end
  end

  defmacro next_message(timeout, do: clauses) do
    quote do
      receive do
        unquote(clauses)
      after
        unquote(timeout) -> :timeout
      end
    end
  end

  defmacro tagged(tag, do: body) do
    quote do
      case unquote(tag) do
        t when is_atom(t) -> unquote(body)
      end
    end
  end
end

defmodule Fidelity.Loops do
  @moduledoc "Countdown loops whose self-call sits inside a macro's expansion."
  import Fidelity.Loops.Macros
  require Fidelity.Loops.Macros, as: M

  defp depth, do: elem(Process.info(self(), :stack_size), 1)

  def via_case(n) do
    my_case n do
      0 -> depth()
      _ -> via_case(n - 1)
    end
  end

  def via_remote_case(n) do
    M.my_case n do
      0 -> depth()
      _ -> via_remote_case(n - 1)
    end
  end

  def via_cond(n, acc \\ 0) do
    my_cond do
      n == 0 -> {acc, depth()}
      rem(n, 2) == 0 -> via_cond(n - 1, acc + 1)
      true -> via_cond(n - 1, acc)
    end
  end

  def via_if(n), do: when_zero(n, depth(), via_if(n - 1))

  def via_remote_if(n), do: Fidelity.Loops.Macros.when_zero(n, depth(), via_remote_if(n - 1))

  def via_nested_macro(n) do
    unless_done n do
      via_nested_macro(n - 1)
    else
      depth()
    end
  end

  def via_with(n) do
    M.with_positive n do
      via_with(n - 1)
    else
      depth()
    end
  end

  def via_receive(n) do
    send(self(), {:tick, n})

    next_message 1_000 do
      {:tick, 0} -> depth()
      {:tick, k} -> via_receive(k - 1)
    end
  end

  def via_tagged(n, tag) do
    tagged tag do
      if n > 0, do: via_tagged(n - 1, tag), else: {tag, depth()}
    end
  end

  def via_pipe(n) when n > 0, do: n |> Kernel.-(1) |> via_pipe()
  def via_pipe(0), do: depth()

  def mutual_even(0), do: {:even, depth()}
  def mutual_even(n), do: mutual_odd(n - 1)
  def mutual_odd(0), do: {:odd, depth()}
  def mutual_odd(n), do: mutual_even(n - 1)

  def via_apply(n), do: if(n == 0, do: depth(), else: apply(__MODULE__, :via_apply, [n - 1]))

  def via_fun(n, f \\ nil) do
    f = f || fn k, g -> via_fun(k, g) end
    if n == 0, do: depth(), else: f.(n - 1, f)
  end
end
