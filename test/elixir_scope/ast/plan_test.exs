defmodule ElixirScope.AST.PlanTest do
  @moduledoc false
  use ExUnit.Case, async: true

  alias ElixirScope.AST.{Plan, Transformer}
  alias ElixirScope.Test.ASTCorpus

  test "defaults fill a module plan; a level atom is a plan" do
    assert {:ok,
            %{
              level: :function_boundaries,
              functions: %{},
              custom_injections: [],
              genserver_state: :auto,
              macros: false
            }} = Plan.normalize(%{})

    assert {:ok, %{level: :full}} = Plan.normalize(:full)
  end

  test "unknown keys and wrong types are named" do
    assert {:error, msg} = Plan.normalize(%{level: :full, colour: :blue})
    assert msg =~ ":colour"
    assert {:error, msg} = Plan.normalize(%{level: :everything})
    assert msg =~ "level" and msg =~ ":everything"
    assert {:error, msg} = Plan.normalize(%{capture_locals: ["x"]})
    assert msg =~ "capture_locals"
    assert {:error, msg} = Plan.normalize(%{trace_expressions: :some})
    assert msg =~ "trace_expressions"
    assert {:error, msg} = Plan.normalize(%{custom_injections: [{0, :before, :ok}]})
    assert msg =~ "custom_injections"
    assert {:error, msg} = Plan.normalize(%{custom_injections: [{3, :around, :ok}]})
    assert msg =~ ":around"
    assert {:error, msg} = Plan.normalize(%{custom_injections: [{3, :after, {:a, :b, :c, :d}}]})
    assert msg =~ "invalid quoted expression"
    assert {:error, msg} = Plan.normalize(%{genserver_state: :maybe})
    assert msg =~ "genserver_state"
    assert {:error, msg} = Plan.normalize(%{macros: 1})
    assert msg =~ "macros"
    assert {:error, msg} = Plan.normalize(%{functions: %{foo: %{}}})
    assert msg =~ "{name, arity}"
    assert {:error, msg} = Plan.normalize(%{functions: %{{:f, 1} => %{level: :full, depth: 3}}})
    assert msg =~ "functions[f/1]" and msg =~ ":depth"
    assert {:error, _} = Plan.normalize("full")
  end

  test "function plans are checked against the functions a module defines" do
    ast =
      quote do
        defmodule M do
          def a(x, y \\ 1), do: {x, y}
          defp b, do: :b
          defdelegate c(l), to: Enum, as: :reverse
          def d(x) when is_integer(x), do: x

          defmodule N do
            def e, do: :e
          end
        end
      end

    defined = Plan.defined_functions(ast)
    assert Enum.sort(defined) == [a: 1, a: 2, b: 0, c: 1, d: 1, e: 0]
    assert {:ok, _} = Plan.validate_for(%{functions: %{{:a, 2} => %{level: :full}}}, defined)

    assert {:error, msg} =
             Plan.validate_for(%{functions: %{{:a, 3} => %{}, {:zz, 0} => %{}}}, defined)

    assert msg =~ "a/3" and msg =~ "zz/0"
  end

  test "a module plan resolves into what each function gets" do
    forms =
      ASTCorpus.forms_of_source("""
      defmodule ESTest.PlanResolve do
        def f(x) do
          a = x + 1
          b = a * 2
          a + b
        end

        def g(x), do: x
        def h(x), do: x
      end
      """)

    plan = %{
      level: :expressions,
      capture_locals: [:b],
      functions: %{{:f, 1} => %{level: :full}, {:g, 1} => %{level: :none}},
      custom_injections: [{3, :before, :ok}]
    }

    {:ok, new} = Transformer.transform_forms(forms, plan)
    assert Enum.sort(ASTCorpus.instrumented_functions(new)) == [f: 1, h: 1]

    assert {:attribute, _, :elixir_scope, %{level: :expressions, functions: functions}} =
             Enum.find(new, &match?({:attribute, _, :elixir_scope, _}, &1))

    assert Enum.sort(functions) == [{{:f, 1}, :full}, {{:h, 1}, :expressions}]

    # f at :full with the module's capture_locals: [:b]: only b's snapshot; every statement's
    # value; the module's injection
    f = Enum.find(new, &match?({:function, _, :f, 1, _}, &1))

    assert [[:b]] ==
             for(
               {:map, _, fields} <- reports(f, {:emit, :local}),
               do: keys(fields)
             )

    assert length(reports(f, {:emit, :expr})) == 3
    assert length(reports(f, :run_injection)) == 1

    assert {:ok, %{level: :function_boundaries}} =
             Plan.normalize(%{functions: %{{:f, 1} => %{level: :full}}})
  end

  # the arguments of the injected calls to `name` in a form (the vars map for snapshots)
  # {:emit, kind}: the NIF calls (emit/8, emit_value/4) that record events of that kind (the payload
  # for local snapshots)
  defp reports({:call, _, {:remote, _, _, {:atom, _, nif}}, [{:atom, _, kind} | args]}, {:emit, kind})
       when nif in [:emit, :emit_value],
       do: [List.last(args)]

  defp reports({:call, _, {:remote, _, _, {:atom, _, name}}, args}, name),
    do: [arg_of(name, args)]

  defp reports(t, name) when is_tuple(t), do: reports(Tuple.to_list(t), name)
  defp reports(l, name) when is_list(l), do: Enum.flat_map(l, &reports(&1, name))
  defp reports(_, _), do: []

  defp arg_of(_, args), do: args

  defp keys(fields), do: for({:map_field_assoc, _, {:atom, _, k}, _} <- fields, do: k)

  describe "project plans" do
    test "a valid plan is normalized and gives module plans" do
      plan = %{
        version: 1,
        default_level: :function_boundaries,
        include: [MyApp, "Other."],
        exclude: [MyApp.Secret],
        modules: %{MyApp.Worker => %{level: :full}, MyApp.Cache => %{capture_locals: [:x]}},
        strategy: :balanced,
        provider: :mock,
        generated_at: "2026-01-01T00:00:00Z"
      }

      assert {:ok, p} = Plan.validate_project(plan)
      assert Plan.for_module(p, MyApp.Worker) == %{level: :full}

      assert Plan.for_module(p, MyApp.Cache) == %{
               level: :function_boundaries,
               capture_locals: [:x]
             }

      assert Plan.for_module(p, MyApp.Other) == %{level: :function_boundaries}
      assert Plan.for_module(p, Other.Thing) == %{level: :function_boundaries}
      assert Plan.for_module(p, MyApp.Secret) == %{level: :none}
      assert Plan.for_module(p, MyApp.Secret.Deep) == %{level: :none}
      assert Plan.for_module(p, Unrelated) == %{level: :none}
      assert {:ok, everything} = Plan.validate_project(%{default_level: :full})
      assert Plan.for_module(everything, Anything) == %{level: :full}
    end

    test "errors name the bad part" do
      assert {:error, msg} = Plan.validate_project(%{version: 2})
      assert msg =~ "version"
      assert {:error, msg} = Plan.validate_project(%{modules: %{Foo => %{level: :loud}}})
      assert msg =~ "modules[Foo]" and msg =~ ":loud"
      assert {:error, msg} = Plan.validate_project(%{include: [1]})
      assert msg =~ "include"
      assert {:error, msg} = Plan.validate_project(%{providr: :x})
      assert msg =~ ":providr"
      assert {:error, msg} = Plan.validate_project(%{generated_at: 5})
      assert msg =~ "generated_at"
    end
  end
end
