defmodule Fidelity.Combinator do
  @moduledoc """
  A small parser-combinator library in the style of NimbleParsec: combinators are data (a list of
  steps, last step first), and `defparser/2` compiles them at compile time into clauses of private
  functions that call each other in tail position, with an explicit stack for backtracking.
  """

  @type t :: [tuple()]

  def empty, do: []

  def string(combinator \\ [], binary) when is_binary(binary),
    do: [{:string, binary} | combinator]

  def ascii_char(combinator \\ [], ranges) when is_list(ranges),
    do: [{:char, ranges} | combinator]

  def integer(combinator \\ [], min_digits) when is_integer(min_digits) and min_digits > 0,
    do: [{:integer, min_digits} | combinator]

  def concat(left, right), do: right ++ left

  def repeat(combinator \\ [], to_repeat), do: [{:repeat, Enum.reverse(to_repeat)} | combinator]

  def choice(combinator \\ [], [_, _ | _] = choices),
    do: [{:choice, Enum.map(choices, &Enum.reverse/1)} | combinator]

  def optional(combinator \\ [], to_try), do: choice(combinator, [to_try, empty()])

  def ignore(combinator \\ [], to_ignore), do: [{:ignore, Enum.reverse(to_ignore)} | combinator]

  def tag(combinator \\ [], to_tag, tag), do: [{:tag, Enum.reverse(to_tag), tag} | combinator]

  def post_traverse(combinator \\ [], to_traverse, {mod, fun}) when is_atom(mod) and is_atom(fun),
    do: [{:traverse, Enum.reverse(to_traverse), {mod, fun}} | combinator]

  def parsec(combinator \\ [], name) when is_atom(name), do: [{:parsec, name} | combinator]

  def eos(combinator \\ []), do: [:eos | combinator]

  @doc """
  Defines `name(binary, opts \\\\ [])` returning `{:ok, results, rest, context}` or
  `{:error, reason, rest, context}`.
  """
  defmacro defparser(name, combinator) do
    quote bind_quoted: [name: name, combinator: combinator] do
      {entry, clauses} = Fidelity.Combinator.Compiler.compile(name, combinator, :parser)

      def unquote(name)(binary, opts \\ []) when is_binary(binary) and is_list(opts) do
        unquote(entry)(binary, [], [], %{offset: 0, line: 1, opts: opts})
      end

      for {fun, args, guard, body} <- clauses do
        defp unquote(fun)(unquote_splicing(args)) when unquote(guard), do: unquote(body)
      end
    end
  end

  @doc "Defines a combinator usable from parsers of the same module with `parsec(name)`."
  defmacro defcombinator(name, combinator) do
    quote bind_quoted: [name: name, combinator: combinator] do
      {_entry, clauses} = Fidelity.Combinator.Compiler.compile(name, combinator, :combinator)

      for {fun, args, guard, body} <- clauses do
        defp unquote(fun)(unquote_splicing(args)) when unquote(guard), do: unquote(body)
      end
    end
  end

  defmodule Compiler do
    @moduledoc false
    # Steps are flattened into labelled instructions; instruction L becomes `name__L/4`
    # (rest, acc, stack, ctx). Backtracking frames on the stack name labels, which
    # `name__jump/5` dispatches. Every call between generated functions is a tail call.

    def compile(name, combinator, kind) do
      {instrs, last} = flatten(Enum.reverse(combinator), 0)
      instrs = instrs ++ [{last, if(kind == :parser, do: :done, else: :return)}]
      labels = Enum.map(instrs, &elem(&1, 0))

      clauses =
        Enum.flat_map(Enum.sort(instrs), &clauses(name, &1)) ++
          jump_clauses(name, labels) ++ fail_clauses(name)

      {fun(name, 0), clauses}
    end

    defp flatten([], l), do: {[], l}

    defp flatten([step | rest], l) do
      {mine, n} = step(step, l)
      {others, last} = flatten(rest, n)
      {mine ++ others, last}
    end

    defp step({:repeat, inner}, l) do
      {body, e} = flatten(inner, l + 1)
      {[{l, {:push_repeat, l + 1, e + 1}} | body] ++ [{e, {:repeat_end, l + 1, e + 1}}], e + 1}
    end

    defp step({:choice, alts}, l) do
      {bodies, starts, ends, next} =
        Enum.reduce(alts, {[], [], [], l + 1}, fn alt, {bs, ss, es, n} ->
          {body, e} = flatten(alt, n)
          {bs ++ body, ss ++ [n], es ++ [e], e + 1}
        end)

      {[{l, {:push_choice, starts}} | bodies] ++ Enum.map(ends, &{&1, {:choice_end, next}}), next}
    end

    defp step({:ignore, inner}, l), do: wrap(inner, l, :ignore_end)
    defp step({:tag, inner, tag}, l), do: wrap(inner, l, {:tag_end, tag})
    defp step({:traverse, inner, mf}, l), do: wrap(inner, l, {:traverse_end, mf})
    defp step(other, l), do: {[{l, other}], l + 1}

    defp wrap(inner, l, end_instr) do
      {body, e} = flatten(inner, l + 1)
      {[{l, :push_acc} | body] ++ [{e, end_instr}], e + 1}
    end

    defp fun(name, label), do: :"#{name}__#{label}"

    defp var(name), do: Macro.var(name, __MODULE__)
    defp vars, do: {var(:rest), var(:acc), var(:stack), var(:ctx)}

    defp call(name, label, rest, acc, stack, ctx),
      do:
        quote(
          do: unquote(fun(name, label))(unquote(rest), unquote(acc), unquote(stack), unquote(ctx))
        )

    defp fail(name, reason, rest, stack, ctx),
      do:
        quote(
          do:
            unquote(:"#{name}__fail")(
              unquote(stack),
              unquote(reason),
              unquote(rest),
              unquote(ctx)
            )
        )

    defp clauses(name, {l, {:string, s}}) do
      {rest, acc, stack, ctx} = vars()
      f = fun(name, l)

      [
        {f, [quote(do: <<unquote(s), unquote(rest)::binary>>), acc, stack, ctx], true,
         call(
           name,
           l + 1,
           rest,
           quote(do: [unquote(s) | unquote(acc)]),
           stack,
           quote(do: Fidelity.Combinator.Compiler.advance(unquote(ctx), unquote(byte_size(s))))
         )},
        {f, [rest, var(:_acc), stack, ctx], true,
         fail(name, "expected string #{inspect(s)}", rest, stack, ctx)}
      ]
    end

    defp clauses(name, {l, {:char, ranges}}) do
      {rest, acc, stack, ctx} = vars()
      c = var(:c)
      f = fun(name, l)

      [
        {f, [quote(do: <<unquote(c)::utf8, unquote(rest)::binary>>), acc, stack, ctx],
         guard(ranges, c),
         call(
           name,
           l + 1,
           rest,
           quote(do: [unquote(c) | unquote(acc)]),
           stack,
           quote(do: Fidelity.Combinator.Compiler.advance_char(unquote(ctx), unquote(c)))
         )},
        {f, [rest, var(:_acc), stack, ctx], true,
         fail(name, "expected a character in #{inspect(ranges)}", rest, stack, ctx)}
      ]
    end

    defp clauses(name, {l, {:integer, min}}) do
      {rest, acc, stack, ctx} = vars()
      {d, n, count} = {var(:d), var(:n), var(:count)}
      f = fun(name, l)
      loop = :"#{f}__digits"

      [
        {f, [rest, acc, stack, ctx], true,
         quote(do: unquote(loop)(unquote(rest), unquote(acc), unquote(stack), unquote(ctx), 0, 0))},
        {loop, [quote(do: <<unquote(d), unquote(rest)::binary>>), acc, stack, ctx, n, count],
         quote(do: unquote(d) >= ?0 and unquote(d) <= ?9),
         quote do
           unquote(loop)(
             unquote(rest),
             unquote(acc),
             unquote(stack),
             Fidelity.Combinator.Compiler.advance(unquote(ctx), 1),
             unquote(n) * 10 + unquote(d) - ?0,
             unquote(count) + 1
           )
         end},
        {loop, [rest, acc, stack, ctx, n, count], quote(do: unquote(count) >= unquote(min)),
         call(name, l + 1, rest, quote(do: [unquote(n) | unquote(acc)]), stack, ctx)},
        {loop, [rest, var(:_acc), stack, ctx, var(:_n), var(:_count)], true,
         fail(name, "expected at least #{min} digits", rest, stack, ctx)}
      ]
    end

    defp clauses(name, {l, :eos}) do
      {rest, acc, stack, ctx} = vars()
      f = fun(name, l)

      [
        {f, ["", acc, stack, ctx], true, call(name, l + 1, "", acc, stack, ctx)},
        {f, [rest, var(:_acc), stack, ctx], true,
         fail(name, "expected end of string", rest, stack, ctx)}
      ]
    end

    defp clauses(name, {l, {:parsec, target}}) do
      {rest, acc, stack, ctx} = vars()
      capture = {:&, [], [{:/, [], [{:"#{name}__jump", [], nil}, 5]}]}
      frame = quote(do: [{:return, unquote(capture), unquote(l + 1)} | unquote(stack)])
      [{fun(name, l), [rest, acc, stack, ctx], true, call(target, 0, rest, acc, frame, ctx)}]
    end

    defp clauses(name, {l, {:push_repeat, start, exit}}) do
      {rest, acc, stack, ctx} = vars()

      frame =
        quote(
          do: [
            {:repeat, unquote(exit), unquote(rest), unquote(acc), unquote(ctx)} | unquote(stack)
          ]
        )

      [{fun(name, l), [rest, acc, stack, ctx], true, call(name, start, rest, acc, frame, ctx)}]
    end

    defp clauses(name, {l, {:repeat_end, start, exit}}) do
      {rest, acc, stack, ctx} = vars()

      frame =
        quote(
          do: [
            {:repeat, unquote(exit), unquote(rest), unquote(acc), unquote(ctx)} | unquote(stack)
          ]
        )

      [
        {fun(name, l),
         [rest, acc, quote(do: [{:repeat, unquote(exit), _, _, _} | unquote(stack)]), ctx], true,
         call(name, start, rest, acc, frame, ctx)}
      ]
    end

    defp clauses(name, {l, {:push_choice, [first | others]}}) do
      {rest, acc, stack, ctx} = vars()

      frame =
        quote(
          do: [
            {:choice, unquote(others), unquote(rest), unquote(acc), unquote(ctx)} | unquote(stack)
          ]
        )

      [{fun(name, l), [rest, acc, stack, ctx], true, call(name, first, rest, acc, frame, ctx)}]
    end

    defp clauses(name, {l, {:choice_end, next}}) do
      {rest, acc, stack, ctx} = vars()

      [
        {fun(name, l), [rest, acc, quote(do: [{:choice, _, _, _, _} | unquote(stack)]), ctx],
         true, call(name, next, rest, acc, stack, ctx)}
      ]
    end

    defp clauses(name, {l, :push_acc}) do
      {rest, acc, stack, ctx} = vars()

      [
        {fun(name, l), [rest, acc, stack, ctx], true,
         call(name, l + 1, rest, [], quote(do: [{:acc, unquote(acc)} | unquote(stack)]), ctx)}
      ]
    end

    defp clauses(name, {l, :ignore_end}) do
      {rest, _acc, stack, ctx} = vars()
      outer = var(:outer)

      [
        {fun(name, l),
         [rest, var(:_acc), quote(do: [{:acc, unquote(outer)} | unquote(stack)]), ctx], true,
         call(name, l + 1, rest, outer, stack, ctx)}
      ]
    end

    defp clauses(name, {l, {:tag_end, tag}}) do
      {rest, acc, stack, ctx} = vars()
      outer = var(:outer)
      tagged = quote(do: [{unquote(tag), :lists.reverse(unquote(acc))} | unquote(outer)])

      [
        {fun(name, l), [rest, acc, quote(do: [{:acc, unquote(outer)} | unquote(stack)]), ctx],
         true, call(name, l + 1, rest, tagged, stack, ctx)}
      ]
    end

    defp clauses(name, {l, {:traverse_end, {m, f}}}) do
      {rest, acc, stack, ctx} = vars()
      outer = var(:outer)
      {rest2, acc2, ctx2, reason} = {var(:rest2), var(:acc2), var(:ctx2), var(:reason)}

      body =
        quote do
          case unquote(m).unquote(f)(unquote(rest), unquote(acc), unquote(ctx)) do
            {unquote(rest2), unquote(acc2), unquote(ctx2)} when is_list(unquote(acc2)) ->
              unquote(
                call(name, l + 1, rest2, quote(do: unquote(acc2) ++ unquote(outer)), stack, ctx2)
              )

            {:error, unquote(reason)} ->
              unquote(fail(name, reason, rest, stack, ctx))
          end
        end

      [
        {fun(name, l), [rest, acc, quote(do: [{:acc, unquote(outer)} | unquote(stack)]), ctx],
         true, body}
      ]
    end

    defp clauses(name, {l, :done}) do
      {rest, acc, _stack, ctx} = vars()

      [
        {fun(name, l), [rest, acc, [], ctx], true,
         quote(do: {:ok, :lists.reverse(unquote(acc)), unquote(rest), unquote(ctx)})}
      ]
    end

    defp clauses(name, {l, :return}) do
      {rest, acc, stack, ctx} = vars()
      {jump, label} = {var(:jump), var(:label)}

      [
        {fun(name, l),
         [rest, acc, quote(do: [{:return, unquote(jump), unquote(label)} | unquote(stack)]), ctx],
         true,
         quote(
           do:
             unquote(jump).(
               unquote(label),
               unquote(rest),
               unquote(acc),
               unquote(stack),
               unquote(ctx)
             )
         )}
      ]
    end

    defp jump_clauses(name, labels) do
      {rest, acc, stack, ctx} = vars()
      j = :"#{name}__jump"

      for(
        l <- labels,
        do: {j, [l, rest, acc, stack, ctx], true, call(name, l, rest, acc, stack, ctx)}
      ) ++
        [
          {j, [:fail, rest, var(:reason), stack, ctx], true,
           fail(name, var(:reason), rest, stack, ctx)}
        ]
    end

    # On failure, frames are popped until a repeat (the loop ends: resume after it with the
    # state saved before the failed iteration), a choice with alternatives left, or a return
    # to the parser that called this combinator (which goes on failing).
    defp fail_clauses(name) do
      {rest, acc, stack, ctx} = vars()

      {reason, saved, saved_ctx, exit, alt, alts, jump} =
        {var(:reason), var(:saved), var(:saved_ctx), var(:exit), var(:alt), var(:alts),
         var(:jump)}

      f = :"#{name}__fail"
      j = :"#{name}__jump"
      ignored = [var(:_reason), var(:_rest), var(:_ctx)]

      [
        {f, [[], reason, rest, ctx], true,
         quote(do: {:error, unquote(reason), unquote(rest), unquote(ctx)})},
        {f,
         [
           quote(
             do: [
               {:repeat, unquote(exit), unquote(saved), unquote(acc), unquote(saved_ctx)}
               | unquote(stack)
             ]
           )
           | ignored
         ], true,
         quote(
           do:
             unquote(j)(
               unquote(exit),
               unquote(saved),
               unquote(acc),
               unquote(stack),
               unquote(saved_ctx)
             )
         )},
        {f,
         [
           quote(
             do: [
               {:choice, [unquote(alt) | unquote(alts)], unquote(saved), unquote(acc),
                unquote(saved_ctx)}
               | unquote(stack)
             ]
           )
           | ignored
         ], true,
         quote do
           unquote(j)(
             unquote(alt),
             unquote(saved),
             unquote(acc),
             [
               {:choice, unquote(alts), unquote(saved), unquote(acc), unquote(saved_ctx)}
               | unquote(stack)
             ],
             unquote(saved_ctx)
           )
         end},
        {f, [quote(do: [{:return, unquote(jump), _} | unquote(stack)]), reason, rest, ctx], true,
         quote(
           do: unquote(jump).(:fail, unquote(rest), unquote(reason), unquote(stack), unquote(ctx))
         )},
        {f, [quote(do: [_ | unquote(stack)]), reason, rest, ctx], true,
         quote(do: unquote(f)(unquote(stack), unquote(reason), unquote(rest), unquote(ctx)))}
      ]
    end

    defp guard(ranges, c) do
      ranges
      |> Enum.map(fn
        a..b -> quote(do: unquote(c) >= unquote(a) and unquote(c) <= unquote(b))
        x when is_integer(x) -> quote(do: unquote(c) === unquote(x))
      end)
      |> Enum.reduce(fn g, acc -> quote(do: unquote(acc) or unquote(g)) end)
    end

    @doc false
    def advance(%{offset: o} = ctx, size), do: %{ctx | offset: o + size}

    @doc false
    def advance_char(%{offset: o, line: line} = ctx, ?\n),
      do: %{ctx | offset: o + 1, line: line + 1}

    def advance_char(%{offset: o} = ctx, _char), do: %{ctx | offset: o + 1}
  end
end
