defmodule ElixirScope.Test.FidelityCases do
  @moduledoc """
  What the fidelity test runs against each build of the corpus (test/fidelity/corpus): the
  calls with their input generators, the quote-returning functions, the tail-recursive loops,
  and the expected `:state` events. Each build is a *variant* whose modules live under their own
  root (`Fidelity.JSON` is `FidelityFull.JSON` in the `:full` build); results are normalized
  back to `Fidelity` before they are compared.
  """

  alias ElixirScope.Test.Gen

  @type variant :: :plain | :none | :function_boundaries | :expressions | :locals | :full
  @type resolver :: (atom() | [atom()] -> module())
  @type case_spec ::
          {String.t(), atom() | [atom()], (resolver(), list() -> term()),
           [(Gen.t() -> {term(), Gen.t()})]}

  # ---- variants

  @doc "The root module of a variant: `FidelityPlain`, `FidelityFull`, ..."
  @spec root(variant()) :: module()
  def root(v), do: Module.concat(["Fidelity" <> Macro.camelize(Atom.to_string(v))])

  @doc "Renames the corpus's root alias `Fidelity` to `root` in quoted code."
  @spec rename(Macro.t(), module()) :: Macro.t()
  def rename(ast, root) do
    [segment] = Module.split(root)
    segment = String.to_atom(segment)

    Macro.prewalk(ast, fn
      {:__aliases__, meta, [:Fidelity | rest]} -> {:__aliases__, meta, [segment | rest]}
      other -> other
    end)
  end

  @doc "The name `mod` (a module of variant `from`) has in variant `to`."
  @spec in_other_variant(module(), variant(), variant()) :: module()
  def in_other_variant(mod, from, to) do
    [a] = Module.split(root(from))
    [b] = Module.split(root(to))

    mod
    |> Atom.to_string()
    |> String.split(".")
    |> Enum.map_join(".", &if(&1 == a, do: b, else: &1))
    |> String.to_atom()
  end

  @doc "True when `mod` belongs to the variant with this root (a segment of its name is the root)."
  @spec in_variant?(module(), module()) :: boolean()
  def in_variant?(mod, root) do
    s = Atom.to_string(mod)
    [segment] = Module.split(root)
    String.starts_with?(s, "Elixir.") and segment in String.split(s, ".")
  end

  @doc "The loaded modules of a variant."
  @spec loaded_modules(module()) :: [module()]
  def loaded_modules(root), do: for({m, _} <- :code.all_loaded(), in_variant?(m, root), do: m)

  @doc "A module the transform instruments: it has a function of its own and is not a protocol."
  @spec instrumentable?(module()) :: boolean()
  def instrumentable?(mod) do
    own =
      for {f, _} <- mod.module_info(:functions),
          s = Atom.to_string(f),
          not (String.starts_with?(s, "__") and String.ends_with?(s, "__")),
          not String.starts_with?(s, "-"),
          not String.starts_with?(s, "MACRO-"),
          f != :module_info,
          do: f

    own != [] and not function_exported?(mod, :__protocol__, 1)
  end

  @doc "Replaces the variant's root by `Fidelity` everywhere in a term; pids and refs become placeholders."
  @spec normalize(term(), variant()) :: term()
  def normalize(term, v) do
    [segment] = Module.split(root(v))
    norm(term, segment, String.to_atom(segment))
  end

  defp norm(a, seg, seg_atom) when is_atom(a) do
    cond do
      a == seg_atom ->
        :Fidelity

      is_boolean(a) or a == nil ->
        a

      true ->
        s = Atom.to_string(a)

        if String.contains?(s, seg),
          do:
            s
            |> String.split(".")
            |> Enum.map_join(".", &if(&1 == seg, do: "Fidelity", else: &1))
            |> String.to_atom(),
          else: a
    end
  end

  defp norm(b, seg, _) when is_binary(b), do: String.replace(b, seg, "Fidelity")
  defp norm(l, seg, sa) when is_list(l), do: norm_list(l, seg, sa)

  defp norm(t, seg, sa) when is_tuple(t),
    do: t |> Tuple.to_list() |> Enum.map(&norm(&1, seg, sa)) |> List.to_tuple()

  defp norm(%{} = m, seg, sa),
    do: m |> :maps.to_list() |> Enum.map(&norm(&1, seg, sa)) |> :maps.from_list()

  defp norm(p, _, _) when is_pid(p) or is_port(p), do: :pid
  defp norm(r, _, _) when is_reference(r), do: :ref

  defp norm(f, seg, sa) when is_function(f) do
    info = Function.info(f)
    {:fun, norm(info[:module], seg, sa), norm(info[:name], seg, sa), info[:arity]}
  end

  defp norm(other, _, _), do: other

  defp norm_list([h | t], seg, sa), do: [norm(h, seg, sa) | norm_list(t, seg, sa)]
  defp norm_list([], _, _), do: []
  defp norm_list(tail, seg, sa), do: norm(tail, seg, sa)

  # ---- running

  @doc "The generated arguments of a case."
  @spec args(case_spec(), Gen.t()) :: list()
  def args({_name, _mod, _call, gens}, g) do
    {args, _} = Enum.map_reduce(gens, g, fn gen, g -> gen.(g) end)
    args
  end

  @doc """
  Runs a case on variant `v` in a fresh process: `{result, mailbox, dictionary}`, normalized,
  where result is `{:ok, value}` or `{:raised, class, reason, user_frames}`.
  """
  @spec outcome(case_spec(), variant(), list()) :: term()
  def outcome({_name, _mod, call, _gens}, v, args) do
    r = root(v)
    resolve = fn suffix -> Module.concat([r | List.wrap(suffix)]) end

    fn -> call.(resolve, args) end
    |> run_isolated(r, true)
    |> normalize(v)
  end

  @doc "Runs `fun` in a fresh process; `{:ok, value}` or `{:raised, class, reason, frames}`."
  @spec in_process((() -> term())) :: term()
  def in_process(fun), do: run_isolated(fun, nil, false)

  defp run_isolated(fun, root, side_effects?) do
    parent = self()
    ref = make_ref()

    {pid, mref} =
      spawn_monitor(fn ->
        result =
          try do
            {:ok, fun.()}
          catch
            kind, reason -> {:raised, kind, reason, user_frames(__STACKTRACE__, root)}
          end

        extra =
          if side_effects?,
            do: {elem(Process.info(self(), :messages), 1), Process.get()},
            else: nil

        send(parent, {ref, result, extra})
      end)

    receive do
      {^ref, result, extra} ->
        Process.demonitor(mref, [:flush])
        if side_effects?, do: {result, extra}, else: result

      {:DOWN, ^mref, :process, ^pid, reason} ->
        {:died, reason}
    after
      60_000 -> raise "the case did not finish in 60 s"
    end
  end

  # the frames of corpus modules: {module, function, arity, line}
  defp user_frames(stack, root) do
    for {mod, fun, args, loc} <- stack, corpus_module?(mod, root) do
      {mod, fun, if(is_list(args), do: length(args), else: args), Keyword.get(loc, :line)}
    end
  end

  defp corpus_module?(mod, nil), do: String.starts_with?(Atom.to_string(mod), "Elixir.Fidelity")
  defp corpus_module?(mod, root), do: in_variant?(mod, root)

  # ---- the calls

  @doc "Every case: `{name, module suffix, call, argument generators}`."
  @spec cases() :: [case_spec()]
  def cases do
    parsers() ++
      decoders() ++
      loops_cases() ++
      types() ++
      options() ++
      control() ++
      define() ++
      otp() ++ protocols() ++ kitchen() ++ router() ++ spawns() ++ rpcs()
  end

  defp c(name, suffix, call, gens), do: {name, suffix, call, gens}

  defp parsers do
    [
      c("Parsers.date", :Parsers, fn m, [s] -> m.(:Parsers).date(s) end, [&date_text/1]),
      c("Parsers.datetime", :Parsers, fn m, [s, o] -> m.(:Parsers).datetime(s, o) end, [
        &datetime_text/1,
        &opts/1
      ]),
      c("Parsers.pairs", :Parsers, fn m, [s] -> m.(:Parsers).pairs(s) end, [&pairs_text/1]),
      c(
        "Parsers.letters",
        :Parsers,
        fn m, [s] -> m.(:Parsers).letters(s) |> m.(:Parsers).summarize() |> without_depth() end,
        [&letters/1]
      ),
      c("Parsers.datetime/bad", :Parsers, fn m, [x] -> m.(:Parsers).datetime(x) end, [&any/1])
    ]
  end

  defp decoders do
    [
      c("JSON.decode", :JSON, fn m, [s] -> m.(:JSON).decode(s) end, [&json_text/1]),
      c("JSON.decode!", :JSON, fn m, [s] -> m.(:JSON).decode!(s) end, [&json_text/1]),
      c("CSV.parse", :CSV, fn m, [s, sep] -> m.(:CSV).parse(s, separator: sep) end, [
        &csv_text/1,
        &one(&1, [?,, ?;])
      ]),
      c("CSV.parse!", :CSV, fn m, [s] -> m.(:CSV).parse!(s) end, [&csv_text/1])
    ]
  end

  defp loops_cases do
    n = fn g -> Gen.int(g, 0, 30) end

    for f <- [
          :via_case,
          :via_remote_case,
          :via_cond,
          :via_if,
          :via_remote_if,
          :via_nested_macro,
          :via_with,
          :via_receive,
          :via_pipe,
          :mutual_even,
          :via_apply,
          :via_fun
        ] do
      c("Loops.#{f}", :Loops, fn m, [k] -> without_depth(apply(m.(:Loops), f, [k])) end, [n])
    end ++
      [
        c(
          "Loops.via_tagged",
          :Loops,
          fn m, [k, t] -> without_depth(m.(:Loops).via_tagged(k, t)) end,
          [n, &one(&1, [:a, :b, "x", 1])]
        ),
        c("Loops.via_with/bad", :Loops, fn m, [x] -> without_depth(m.(:Loops).via_with(x)) end, [
          &any/1
        ])
      ]
  end

  defp types do
    [
      c("Types.type_ast", :Types, fn m, [t] -> m.(:Types).type_ast(t) end, [&type_spec/1]),
      c(
        "Types.to_source",
        :Types,
        fn m, [t] -> m.(:Types).to_source(m.(:Types).type_ast(t)) end,
        [&type_spec/1]
      ),
      c("Types.spec_ast", :Types, fn m, [a, r] -> m.(:Types).spec_ast(:f, a, r) end, [
        &list_of(&1, 3, fn g -> type_spec(g) end),
        &type_spec/1
      ]),
      c("Types.getters", :Types, fn m, [fs] -> m.(:Types).getters(:thing, fs) end, [&fields/1]),
      c(
        "Types.with_bindings",
        :Types,
        fn m, [a, b] ->
          {m.(:Types).with_bindings(a, b),
           m.(:Types).evaluate(m.(:Types).with_bindings(a, b), [])}
        end,
        [&small/1, &small/1]
      ),
      c("Types.escaped", :Types, fn m, [t] -> m.(:Types).escaped(t) end, [&any/1])
    ]
  end

  defp options do
    [
      c(
        "Options.validate",
        :Options,
        fn m, [o] -> m.(:Options).validate(o, m.(:Options).pool_schema()) end,
        [&pool_opts/1]
      ),
      c(
        "Options.validate!",
        :Options,
        fn m, [o] -> m.(:Options).validate!(o, m.(:Options).pool_schema()) end,
        [&pool_opts/1]
      ),
      c("Options.port", :Options, fn m, [p] -> m.(:Options).port(p) end, [
        &one(&1, [80, 0, 70_000, "443", "x", "12a", :p])
      ])
    ]
  end

  defp control do
    n = fn g -> Gen.int(g, 0, 20) end

    [
      c("Control.safe_eval", :Control, fn m, [e, env] -> m.(:Control).safe_eval(e, env) end, [
        &expr(&1, 3),
        &env/1
      ]),
      c("Control.safe_eval/1", :Control, fn m, [e] -> m.(:Control).safe_eval(e) end, [
        &expr(&1, 2)
      ]),
      c("Control.eval", :Control, fn m, [e, env] -> m.(:Control).eval(e, env) end, [
        &expr(&1, 3),
        &env/1
      ]),
      c("Control.checkout", :Control, fn m, [cart] -> m.(:Control).checkout(cart) end, [&cart/1]),
      c("Control.retry", :Control, fn m, [k] -> without_depth(m.(:Control).retry(k)) end, [n]),
      c(
        "Control.retry_throw",
        :Control,
        fn m, [k] -> without_depth(m.(:Control).retry_throw(k)) end,
        [n]
      ),
      c(
        "Control.nested_after",
        :Control,
        fn m, [k] -> without_depth(m.(:Control).nested_after(k)) end,
        [n]
      ),
      c(
        "Control.fill_and_drain",
        :Control,
        fn m, [k] -> without_depth(m.(:Control).fill_and_drain(k)) end,
        [n]
      ),
      c("Control.drain", :Control, fn m, [] -> m.(:Control).drain() end, []),
      c(
        "Control.tree_depth",
        :Control,
        fn m, [k] -> m.(:Control).tree_depth(m.(:Control).build_tree(k)) end,
        [n]
      ),
      c(
        "Control.tree_depth/bad",
        :Control,
        fn m, [x] -> m.(:Control).tree_depth({nil, 1, x}) end,
        [&any/1]
      ),
      c("Control.exit_or_error", :Control, fn m, [a] -> m.(:Control).exit_or_error(a) end, [
        &failure/1
      ]),
      c("Control.wrap_call", :Control, fn m, [a] -> m.(:Control).wrap_call(a) end, [&failure/1])
    ]
  end

  defp define do
    [
      c("Grammar.evaluate", :Grammar, fn m, [s] -> m.(:Grammar).evaluate(s) end, [&grammar_text/1]),
      c("Grammar.lex", :Grammar, fn m, [s] -> m.(:Grammar).lex(s) end, [&grammar_text/1]),
      c(
        "Grammar.Lexer.token?",
        [:Grammar, :Lexer],
        fn m, [t, w] -> m.([:Grammar, :Lexer]).token?(t, w) end,
        [&one(&1, [:number, :word, :op, :nope]), &grammar_text/1]
      ),
      c(
        "Grammar.Lexer.rules",
        [:Grammar, :Lexer],
        fn m, [] -> m.([:Grammar, :Lexer]).rules() |> Map.keys() end,
        []
      ),
      c("Dynamic.build", :Dynamic, fn m, [a] -> m.(:Dynamic).build(a) end, [&attrs/1]),
      c("Dynamic.name", :Dynamic, fn m, [a] -> m.(:Dynamic).name(a) end, [&attrs/1]),
      c(
        "Dynamic.Record.fetch!",
        [:Dynamic, :Record],
        fn m, [a, f] -> m.([:Dynamic, :Record]).fetch!(m.(:Dynamic).build(a), f) end,
        [&attrs/1, &one(&1, [:id, :name, :nope])]
      ),
      c(
        "Dynamic.Record.count_down",
        [:Dynamic, :Record],
        fn m, [k] -> elem(m.([:Dynamic, :Record]).count_down(k, 0), 0) end,
        [&Gen.int(&1, -1, 50)]
      )
    ]
  end

  # every spawning call the transformer records: the caller sees the same values (pids and refs
  # are normalized; a %Task{} returned in tail position is awaited by the case)
  defp spawns do
    x = &Gen.int(&1, -5, 50)
    xs = &Gen.list_of(&1, 6, fn g -> Gen.int(g, 0, 99) end)
    one = fn f -> fn m, [a] -> apply(m.(:Spawns), f, [a]) end end

    [
      c("Spawns.async_all", :Spawns, one.(:async_all), [xs]),
      c("Spawns.async_mfa", :Spawns, one.(:async_mfa), [x]),
      c("Spawns.task", :Spawns, fn m, [a] -> t = m.(:Spawns).task(a); {t, Task.await(t)} end, [x]),
      c("Spawns.echo", :Spawns, one.(:echo), [x]),
      c("Spawns.linked", :Spawns, one.(:linked), [x]),
      c("Spawns.monitored", :Spawns, one.(:monitored), [x]),
      c("Spawns.process_spawn", :Spawns, one.(:process_spawn), [x]),
      c("Spawns.erlang_spawn", :Spawns, one.(:erlang_spawn), [x]),
      c("Spawns.started", :Spawns, one.(:started), [x]),
      c("Spawns.node_spawn", :Spawns, one.(:node_spawn), [x]),
      c("Spawns.supervised", :Spawns, one.(:supervised), [x]),
      c("Spawns.stream", :Spawns, one.(:stream), [xs])
    ]
  end

  # every :erpc/:rpc form the transformer records, to this node: values and exceptions (a remote
  # error, a throw, badarg) as plain
  defp rpcs do
    x = &Gen.int(&1, -5, 50)

    for f <- [:erpc, :erpc_tail, :rpc, :refused, :multi, :rpc_multi, :fun, :cast, :bad_node],
        do: c("Rpc.#{f}", :Rpc, fn m, [a] -> apply(m.(:Rpc), f, [a]) end, [x])
  end

  defp otp do
    [
      c("Pipeline.run", :Pipeline, fn m, [s, script] -> m.(:Pipeline).run(s, script) end, [
        &one(&1, [1, 5, 100, :bad]),
        &stage_script/1
      ]),
      c("Door.run", :Door, fn m, [code, script] -> m.(:Door).run(code, script) end, [
        &door_code/1,
        &door_script/1
      ]),
      c("Thermostat.run", :Thermostat, fn m, [t, rs] -> m.(:Thermostat).run(t, rs) end, [
        &Gen.int(&1, 15, 25),
        &readings/1
      ]),
      c("EventLog.run", :EventLog, fn m, [max, evs] -> m.(:EventLog).run(max, evs) end, [
        &Gen.int(&1, 1, 4),
        &log_events/1
      ])
    ]
  end

  defp protocols do
    [
      c(
        "Shapes.sizes(sample)",
        :Shapes,
        fn m, [k] -> m.(:Shapes).sizes(m.(:Shapes).sample(k)) end,
        [&Gen.int(&1, 0, 6)]
      ),
      c("Shapes.sizes(terms)", :Shapes, fn m, [ts] -> m.(:Shapes).sizes(ts) end, [
        &list_of(&1, 4, fn g -> any(g) end)
      ]),
      c(
        "Shapes.point",
        :Shapes,
        fn m, [a, k] ->
          m.(:Shapes).point(a)
          |> then(&{m.(:Shapes).sum(&1), m.(:Shapes).take(&1, k), m.(:Shapes).step_through(&1)})
        end,
        [&point_attrs/1, &Gen.int(&1, 1, 4)]
      ),
      c(
        "Shapes.reduce(list)",
        :Shapes,
        fn m, [l, k] ->
          {m.(:Shapes).sum(l), m.(:Shapes).take(l, k), m.(:Shapes).step_through(l)}
        end,
        [&list_of(&1, 6, fn g -> small(g) end), &Gen.int(&1, 1, 4)]
      )
    ]
  end

  defp kitchen do
    text = &Gen.binary(&1, 12)

    [
      c("Text.upcase", :Text, fn m, [s] -> m.(:Text).upcase(s) end, [text]),
      c("Text.split/1", :Text, fn m, [s] -> m.(:Text).split(s) end, [&words/1]),
      c("Text.split/2", :Text, fn m, [s, p] -> m.(:Text).split(s, p) end, [
        &words/1,
        &one(&1, ["a", ",", " "])
      ]),
      c("Text.words", :Text, fn m, [s] -> m.(:Text).words(s) end, [&words/1]),
      c("Text.pad", :Text, fn m, args -> apply(m.(:Text), :pad, args) end, [&pad_args/1])
      |> splat(),
      c("Text.truncate", :Text, fn m, args -> apply(m.(:Text), :truncate, args) end, [
        &truncate_args/1
      ])
      |> splat(),
      c("Text.classify", :Text, fn m, [x] -> m.(:Text).classify(x) end, [&classify_input/1]),
      c(
        "Inventory.take",
        :Inventory,
        fn m, [items, sku, k] -> m.(:Inventory).take(m.(:Inventory).new(items), sku, k) end,
        [&items/1, &sku/1, &Gen.int(&1, 0, 6)]
      ),
      c(
        "Inventory.take!",
        :Inventory,
        fn m, [items, sku, k] -> m.(:Inventory).take!(m.(:Inventory).new(items), sku, k) end,
        [&items/1, &sku/1, &Gen.int(&1, 0, 6)]
      ),
      c(
        "Inventory.order",
        :Inventory,
        fn m, [items, lines] -> m.(:Inventory).order(m.(:Inventory).new(items), lines) end,
        [&items/1, &order_lines/1]
      ),
      c(
        "Inventory.report",
        :Inventory,
        fn m, [items] -> m.(:Inventory).report(m.(:Inventory).new(items)) end,
        [&items/1]
      ),
      c(
        "Inventory.records",
        :Inventory,
        fn m, [recs, cut] ->
          recs
          |> m.(:Inventory).encode_records()
          |> cut_binary(cut)
          |> m.(:Inventory).decode_records()
        end,
        [&records/1, &Gen.int(&1, 0, 3)]
      ),
      c("Inventory.pairs", :Inventory, fn m, [xs, ys] -> m.(:Inventory).pairs(xs, ys) end, [
        &list_of(&1, 5, fn g -> Gen.int(g, 0, 5) end),
        &list_of(&1, 5, fn g -> Gen.int(g, 0, 5) end)
      ]),
      c(
        "Inventory.utf8",
        :Inventory,
        fn m, [s, k] -> {m.(:Inventory).utf8_chars(s), m.(:Inventory).bytes_over(s, k)} end,
        [&one(&1, ["héllo", "plain", "ñandú €", <<0xFF, ?a>>]), &Gen.int(&1, 0, 200)]
      ),
      c(
        "Inventory.bump",
        :Inventory,
        fn m, [x, by] -> m.(:Inventory).bump(bump_target(m, x), by) end,
        [&one(&1, [:item, :map, 3]), &small/1]
      )
    ]
  end

  defp router do
    [
      c(
        "Router.call",
        :Router,
        fn m, [method, path, params] ->
          m.(:Router).call(m.([:Router, :App]), method, path, params)
        end,
        [
          &one(&1, [:get, :post, :put]),
          &route_path/1,
          &one(&1, [%{}, %{"q" => "1"}, %{"id" => "x"}])
        ]
      ),
      c(
        "Router.routes",
        [:Router, :App],
        fn m, [] -> {m.([:Router, :App]).routes(), m.([:Router, :Admin]).routes()} end,
        []
      )
    ]
  end

  # Stack sizes measured inside instrumented code differ from plain by the instrumented frames
  # around the measuring call (a constant, checked by the loops test): values keep the rest.
  defp without_depth({:ok, results, rest, %{stack: _} = ctx}),
    do: {:ok, results, rest, Map.delete(ctx, :stack)}

  defp without_depth({value, depth}) when is_integer(depth), do: value
  defp without_depth(depth) when is_integer(depth), do: :bottom
  defp without_depth(other), do: other

  # a case whose single generator makes the whole argument list
  defp splat({name, suffix, call, [gen]}),
    do: {name, suffix, fn m, [args] -> call.(m, args) end, [gen]}

  defp bump_target(m, :item), do: struct(m.([:Inventory, :Item]), sku: "a", qty: 1)
  defp bump_target(_m, :map), do: %{sku: "a", qty: 1}
  defp bump_target(_m, other), do: other

  defp cut_binary(bin, 0), do: bin
  defp cut_binary(bin, n), do: binary_part(bin, 0, max(byte_size(bin) - n, 0))

  # ---- generators

  defp one(g, list), do: Gen.one_of(g, list)
  defp small(g), do: Gen.int(g, -20, 20)
  defp any(g), do: Gen.term(g, 2)
  defp list_of(g, max, fun), do: Gen.list_of(g, max, fun)

  defp opts(g), do: one(g, [[], [trace: true]])

  # a string made of `max` fragments
  defp text(g, fragments, max) do
    {parts, g} = list_of(g, max, &one(&1, fragments))
    {Enum.join(parts), g}
  end

  # either a valid string or a corruption of one (cut, or a byte replaced)
  defp maybe_corrupt({s, g}) do
    {k, g} = Gen.int(g, 0, 4)

    cond do
      k < 3 or s == "" ->
        {s, g}

      k == 3 ->
        {at, g} = Gen.int(g, 0, byte_size(s) - 1)
        {binary_part(s, 0, at), g}

      true ->
        {at, g} = Gen.int(g, 0, byte_size(s) - 1)
        {b, g} = one(g, [?x, ?,, ?], ?:, ?", ?\\, ?-, ?\s])
        <<pre::binary-size(at), _, post::binary>> = s
        {pre <> <<b>> <> post, g}
    end
  end

  defp digits(g, n) do
    {ds, g} = Gen.many(g, n, &Gen.int(&1, 0, 9))
    {Enum.join(ds), g}
  end

  defp date_text(g) do
    {y, g} = digits(g, 4)
    {m, g} = digits(g, 2)
    {d, g} = digits(g, 2)
    maybe_corrupt({"#{y}-#{m}-#{d}", g})
  end

  defp datetime_text(g) do
    {date, g} = date_text(g)
    {sep, g} = one(g, ["T", " ", "x"])
    {h, g} = digits(g, 2)
    {mi, g} = digits(g, 2)
    {sec, g} = one(g, ["", ":05", ":5"])
    {z, g} = one(g, ["", "Z", "ZZ"])
    maybe_corrupt({date <> sep <> h <> ":" <> mi <> sec <> z, g})
  end

  defp pairs_text(g) do
    pair = fn g ->
      {k, g} = one(g, ["a", "bb", "c3", "_x", "bad", "9"])
      {sp, g} = one(g, ["", " ", "\n"])
      {v, g} = one(g, ["1", "42", "word", "bad", "\"q s\"", "\"", ""])
      {k <> sp <> "=" <> sp <> v, g}
    end

    {ps, g} = list_of(g, 4, pair)
    {sep, g} = one(g, [",", " , ", ";"])
    maybe_corrupt({Enum.join(ps, sep), g})
  end

  defp letters(g), do: text(g, ["a", "bc", "xyz", "q", "1", "A"], 12)

  defp json_value(g, 0) do
    {k, g} = Gen.int(g, 0, 5)

    case k do
      0 ->
        with {n, g} <- small(g), do: {Integer.to_string(n), g}

      1 ->
        with {a, g} <- small(g), {b, g} <- Gen.int(g, 1, 99), do: {"#{a}.#{b}", g}

      2 ->
        with {s, g} <- text(g, ["a", "b c", "\\n", "\\\"", "\\\\", "\\t", "é"], 4),
             do: {~s("#{s}"), g}

      _ ->
        one(g, ["true", "false", "null"])
    end
  end

  defp json_value(g, depth) do
    {k, g} = Gen.int(g, 0, 3)

    case k do
      0 ->
        with {vs, g} <- list_of(g, 4, &json_value(&1, depth - 1)),
             do: {"[" <> Enum.join(vs, ", ") <> "]", g}

      1 ->
        member = fn g ->
          with {key, g} <- one(g, ["a", "b", "key", ""]),
               {v, g} <- json_value(g, depth - 1),
               do: {~s("#{key}": #{v}), g}
        end

        with {ms, g} <- list_of(g, 3, member), do: {"{" <> Enum.join(ms, ",") <> "}", g}

      _ ->
        json_value(g, 0)
    end
  end

  defp json_text(g), do: maybe_corrupt(json_value(g, 3))

  defp csv_text(g), do: text(g, ["a", "bc", ",", ";", "\"", "\"\"", "\n", " ", "1"], 14)

  defp type_spec(g), do: type_spec(g, 2)

  defp type_spec(g, 0),
    do: one(g, [:integer, :atom, :boolean, :string, :pos_integer, :any, :bogus])

  defp type_spec(g, d) do
    {k, g} = Gen.int(g, 0, 6)

    case k do
      0 ->
        with {t, g} <- type_spec(g, d - 1), do: {{:list, t}, g}

      1 ->
        with {a, g} <- type_spec(g, d - 1), {b, g} <- type_spec(g, d - 1), do: {{:map, a, b}, g}

      2 ->
        with {cs, g} <- list_of(g, 3, &one(&1, [:x, :y, :z, 1])), do: {{:in, [:w | cs]}, g}

      3 ->
        with {ts, g} <- list_of(g, 3, &type_spec(&1, d - 1)), do: {{:tuple, ts}, g}

      4 ->
        with {ks, g} <- fields(g), do: {{:keyword, ks}, g}

      _ ->
        type_spec(g, 0)
    end
  end

  defp fields(g) do
    list_of(g, 3, fn g ->
      with {k, g} <- one(g, [:name, :age, :email, :id]),
           {t, g} <- type_spec(g, 0),
           do: {{k, t}, g}
    end)
  end

  defp pool_opts(g) do
    {k, g} = Gen.int(g, 0, 9)
    if k == 0, do: one(g, [:not_a_list, [1, 2], [{"name", 1}]]), else: pool_kw(g)
  end

  defp pool_kw(g) do
    entries = [
      name: [:pool, :other, "str", nil],
      size: [1, 10, 0, -1, :big],
      mode: [:lifo, :fifo, :random],
      tags: [[], ["a", "b"], ["a", :b], :none],
      extra: [1, :anything],
      bogus: [true]
    ]

    {kvs, g} =
      Enum.reduce(entries, {[], g}, fn {key, values}, {acc, g} ->
        {present, g} = Gen.int(g, 0, 2)
        {v, g} = one(g, values)

        if present > 0 and (key != :bogus or v == :never),
          do: {[{key, v} | acc], g},
          else: {acc, g}
      end)

    {conn, g} = conn_kw(g)
    {kvs, g} = if conn == :absent, do: {kvs, g}, else: {kvs ++ [conn: conn], g}
    {bogus, g} = Gen.int(g, 0, 8)
    {if(bogus == 0, do: [{:bogus, 1} | kvs], else: Enum.reverse(kvs)), g}
  end

  defp conn_kw(g) do
    {k, g} = Gen.int(g, 0, 6)

    case k do
      0 ->
        {:absent, g}

      1 ->
        one(g, ["host", [:x]])

      _ ->
        with {host, g} <- one(g, [[host: "h"], [host: 1], []]),
             {port, g} <- one(g, [[], [port: 8080], [port: "443"], [port: "x"], [port: 0]]),
             {tls, g} <-
               one(g, [
                 [],
                 [tls: []],
                 [tls: [verify: false]],
                 [tls: [versions: [:v1, :v2]]],
                 [tls: [versions: [:v1, "v2"]]],
                 [tls: [verify: 1]],
                 [tls: :on]
               ]) do
          {host ++ port ++ tls, g}
        end
    end
  end

  defp expr(g, 0) do
    {k, g} = Gen.int(g, 0, 9)

    case k do
      0 -> one(g, [:oops, {:num, :x}])
      k when k < 6 -> with {n, g} <- Gen.int(g, -5, 9), do: {{:num, n}, g}
      _ -> with {v, g} <- one(g, [:x, :y, :z]), do: {{:var, v}, g}
    end
  end

  defp expr(g, d) do
    {k, g} = Gen.int(g, 0, 5)

    case k do
      k when k < 4 ->
        with {op, g} <- one(g, [:add, :sub, :mul, :div]),
             {a, g} <- expr(g, d - 1),
             {b, g} <- expr(g, d - 1),
             do: {{op, a, b}, g}

      4 ->
        with {name, g} <- one(g, [:x, :y]),
             {v, g} <- expr(g, d - 1),
             {b, g} <- expr(g, d - 1),
             do: {{:let, name, v, b}, g}

      _ ->
        expr(g, 0)
    end
  end

  defp env(g), do: one(g, [%{x: 2, y: -3}, %{x: 0}, %{}, %{x: 1, y: 2, z: 3}])

  defp cart(g) do
    item = fn g ->
      with {n, g} <- one(g, [:a, :b]),
           {p, g} <- one(g, [5, 20, :free]),
           {q, g} <- Gen.int(g, -1, 4),
           do: {{n, p, q}, g}
    end

    {k, g} = Gen.int(g, 0, 6)

    if k == 0 do
      one(g, [%{}, %{items: []}])
    else
      with {items, g} <- list_of(g, 4, item),
           {limit, g} <- one(g, [100, 30]),
           {disc, g} <- one(g, [0, 10, 60]) do
        {%{items: items, limit: limit, discount: disc}, g}
      end
    end
  end

  defp failure(g) do
    {k, g} = Gen.int(g, 0, 8)

    case k do
      0 -> {{:fun_clause, {:ok, 1}}, g}
      1 -> {{:fun_clause, :nope}, g}
      2 -> {{:case_clause, :never}, g}
      3 -> {{:case_clause, 2}, g}
      4 -> {{:badmatch, :oops}, g}
      5 -> {{:badmatch, {:ok, 5}}, g}
      _ -> one(g, [:exit, :error, :raise, :throw, :unknown])
    end
  end

  defp grammar_text(g), do: text(g, ["1", "23", "+", "*", "-", "abc", "?", " ", " "], 7)

  defp attrs(g) do
    {k, g} = Gen.int(g, 0, 5)

    if k == 0 do
      one(g, [[id: 1], :nope])
    else
      with {id, g} <- Gen.int(g, 1, 9),
           {name, g} <- one(g, ["ann", nil]),
           {extra, g} <- one(g, [%{}, %{email: "e"}, %{zz: 1}]) do
        {Map.merge(%{id: id, name: name}, extra), g}
      end
    end
  end

  defp stage_script(g) do
    step = fn g ->
      {k, g} = Gen.int(g, 0, 7)

      case k do
        0 -> with {n, g} <- Gen.int(g, 0, 7), do: {{:demand, n}, g}
        1 -> with {n, g} <- Gen.int(g, 1, 4), do: {{:demand, n}, g}
        2 -> with {evs, g} <- list_of(g, 3, &Gen.int(&1, 1, 30)), do: {{:inject, evs}, g}
        3 -> with {n, g} <- Gen.int(g, 0, 5), do: {{:skip, n}, g}
        _ -> one(g, [:peek, :pause, :resume, :flush])
      end
    end

    {steps, g} = list_of(g, 8, step)
    {crash, g} = Gen.int(g, 0, 4)
    {if(crash == 0, do: steps ++ [:crash, :peek], else: steps), g}
  end

  defp door_code(g) do
    {k, g} = Gen.int(g, 0, 8)
    if k == 0, do: {:nocode, g}, else: list_of(g, 3, &Gen.int(&1, 1, 3))
  end

  defp door_script(g), do: list_of(g, 10, &one(&1, [1, 2, 3, 1, 2, :close]))

  defp readings(g) do
    reading = fn g ->
      {k, g} = Gen.int(g, 0, 12)

      case k do
        0 -> {:boom, g}
        1 -> with {t, g} <- Gen.int(g, 15, 25), do: {{:target, t}, g}
        2 -> {:report, g}
        _ -> with {t, g} <- Gen.int(g, 10, 30), do: {{:reading, t}, g}
      end
    end

    list_of(g, 6, reading)
  end

  defp log_events(g) do
    ev = fn g ->
      with {lvl, g} <- one(g, [:info, :warn, :error, :debug]), {msg, g} <- Gen.binary(g, 4) do
        {k, g} = Gen.int(g, 0, 9)
        {if(k == 0, do: :noise, else: {lvl, msg}), g}
      end
    end

    list_of(g, 10, ev)
  end

  defp point_attrs(g) do
    {keys, g} = list_of(g, 4, &one(&1, [:x, :y, :z, :w]))

    Enum.reduce(Enum.uniq(keys), {[], g}, fn k, {acc, g} ->
      {v, g} = small(g)
      {[{k, v} | acc], g}
    end)
  end

  defp words(g), do: text(g, ["Hello", " ", "world", ",", "a", "ÉTÉ", "  ", "x1"], 6)

  defp pad_args(g) do
    {s, g} = Gen.binary(g, 6)
    {w, g} = Gen.int(g, 0, 12)
    {side, g} = one(g, [:left, :right, :center, :middle])
    {ch, g} = one(g, [" ", "-", "ab"])
    {n, g} = Gen.int(g, 1, 4)
    {Enum.take([s, w, side, ch], n), g}
  end

  defp truncate_args(g) do
    {v, g} =
      one(g, [12_345_678_901, 7, :an_atom_name, :ok, nil, "short", "a longer string here", 1.5])

    {max, g} = Gen.int(g, 0, 12)
    {n, g} = Gen.int(g, 1, 2)
    {Enum.take([v, max], n), g}
  end

  defp classify_input(g) do
    {k, g} = Gen.int(g, 0, 3)

    case k do
      0 ->
        one(g, [
          0,
          -4,
          7,
          10,
          2.345,
          "123",
          "abc",
          [1, 2, 3, 4, 5],
          [],
          %{},
          %{a: 1},
          URI.parse("http://x")
        ])

      _ ->
        any(g)
    end
  end

  defp sku(g), do: one(g, ["a", "b", "c", "zz"])

  defp items(g) do
    list_of(g, 3, fn g ->
      with {s, g} <- sku(g),
           {q, g} <- Gen.int(g, 0, 5),
           {p, g} <- Gen.int(g, 0, 9),
           do: {{s, q, p}, g}
    end)
  end

  defp order_lines(g),
    do:
      list_of(g, 3, fn g -> with {s, g} <- sku(g), {n, g} <- Gen.int(g, 1, 4), do: {{s, n}, g} end)

  defp records(g),
    do:
      list_of(g, 4, fn g ->
        with {n, g} <- Gen.binary(g, 5), {q, g} <- Gen.int(g, 0, 65_535), do: {{n, q}, g}
      end)

  defp route_path(g) do
    one(g, [
      "/",
      "/users/1",
      "/users/x",
      "/users/0",
      "/users/7/posts/3",
      "/echo",
      "/admin/stats",
      "/admin/users/5/ban",
      "/admin/users/zz/ban",
      "/nope",
      "/admin"
    ])
  end

  # ---- quote output

  @doc "Functions returning quoted code: `{name, fn variant -> quoted end}`."
  @spec quoting() :: [{String.t(), (variant() -> Macro.t())}]
  def quoting do
    t = fn v -> Module.concat([root(v), :Types]) end

    specs = [
      :integer,
      :string,
      {:list, {:map, :atom, :pos_integer}},
      {:in, [:a, :b]},
      {:tuple, [:any, :boolean]},
      {:keyword, [a: :integer]}
    ]

    [
      {"typespec", &t.(&1).typespec()},
      {"kept (location: :keep)", &t.(&1).kept()},
      {"generated: true", &t.(&1).generated(:f)},
      {"unquoted_fun", &t.(&1).unquoted_fun()},
      {"context_var", &t.(&1).context_var()},
      {"bind_quoted", &t.(&1).with_bindings(1, 2)},
      {"escaped", &t.(&1).escaped(%{a: [1, {2}]})},
      {"getters", &t.(&1).getters(:user, name: :string, age: :pos_integer)},
      {"spec_ast", &t.(&1).spec_ast(:f, [:integer, {:list, :atom}], :boolean)}
    ] ++ for(s <- specs, do: {"type_ast #{inspect(s)}", &t.(&1).type_ast(s)})
  end

  # ---- tail-recursive loops

  @doc """
  Loops run `n` times: `{name, fn variant -> {value, stack words at the bottom} end}`. Names
  ending in "(probe outside)" measure in a callback of the test (plain code) called in tail
  position; the others call the corpus's own (instrumented) `depth/0`.
  """
  @spec loops(pos_integer()) :: [{String.t(), (variant() -> {term(), non_neg_integer()})}]
  def loops(n) do
    m = fn v, suffix -> Module.concat([root(v) | List.wrap(suffix)]) end
    depth = fn -> elem(Process.info(self(), :stack_size), 1) end

    json = "[" <> Enum.map_join(1..n, ",", &Integer.to_string(rem(&1, 10))) <> "]"
    csv = Enum.map_join(1..n, ",", fn i -> <<?a + rem(i, 26)>> end)
    letters = String.duplicate("a", n)

    macro_loops = [
      :via_case,
      :via_remote_case,
      :via_if,
      :via_remote_if,
      :via_nested_macro,
      :via_with,
      :via_receive
    ]

    [
      {"Parsers.letters (generated repeat loop)",
       fn v ->
         {:ok, [count], "", ctx} = m.(v, :Parsers).letters(letters)
         {count, ctx.stack}
       end},
      {"JSON.decode of an n-element array (imported byte_case) (probe outside)",
       fn v -> m.(v, :JSON).decode(json, finish: fn list -> {length(list), depth.()} end) end},
      {"CSV.parse of n fields (remote Macros.byte_case / on_byte / expect) (probe outside)",
       fn v -> m.(v, :CSV).parse(csv, finish: fn [row] -> {length(row), depth.()} end) end},
      {"Loops.via_cond (imported macro to cond)", fn v -> m.(v, :Loops).via_cond(n) end},
      {"Loops.via_tagged (macro to case, body in if)",
       fn v -> m.(v, :Loops).via_tagged(n, :t) end},
      {"Loops.mutual_even (mutual recursion)", fn v -> m.(v, :Loops).mutual_even(n) end},
      {"Loops.via_pipe", fn v -> {:pipe, m.(v, :Loops).via_pipe(n)} end},
      {"Loops.via_apply (erlang:apply in tail position)",
       fn v -> {:apply, m.(v, :Loops).via_apply(n)} end},
      {"Loops.via_fun (a fun call in tail position)",
       fn v -> {:fun, m.(v, :Loops).via_fun(n)} end},
      {"Control.retry (tail call in rescue)", fn v -> m.(v, :Control).retry(n) end},
      {"Control.retry_throw (tail call in catch)",
       fn v -> {:done, m.(v, :Control).retry_throw(n)} end},
      {"Control.fill_and_drain (receive loop)",
       fn v -> m.(v, :Control).fill_and_drain(n) |> then(fn {l, d} -> {length(l), d} end) end},
      {"Dynamic.Record.count_down (module made by Module.create)",
       fn v -> m.(v, [:Dynamic, :Record]).count_down(n, 0) end}
    ] ++
      for f <- macro_loops do
        {"Loops.#{f} (tail call inside a macro's expansion)",
         fn v -> {f, apply(m.(v, :Loops), f, [n])} end}
      end
  end

  # ---- :state events

  @doc "Modules whose callbacks must record `:state`, each with a predicate one of its `{phase, state}` must satisfy."
  @spec state_expectations() :: [{[atom()], ({atom(), term()} -> boolean())}]
  def state_expectations do
    [
      {[:Counter], &match?({_, %{next: n, paused: _}} when is_integer(n), &1)},
      {[:Batcher], &match?({_, %{pending: _, seen: _}}, &1)},
      {[:MiniStage], &match?({_, %{state: _, out: _}}, &1)},
      # gen_statem: {state name, data}
      {[:Door],
       &match?({_, {s, %{code: _, input: _, opened: _}}} when s in [:locked, :open], &1)},
      {[:Thermostat],
       &match?({_, {s, %{target: _, temp: _}}} when s in [:idle, :heating, :cooling], &1)},
      {[:EventLog], &match?({_, %{max: _, events: _}}, &1)}
    ]
  end
end
