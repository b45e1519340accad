defmodule ElixirScope.AST.PlanTest do
  @moduledoc false
  use ExUnit.Case, async: true

  alias ElixirScope.AST.Plan

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

  test "to_nif resolves levels into what C reads" do
    {:ok, p} =
      Plan.normalize(%{
        level: :expressions,
        capture_locals: [:x],
        functions: %{{:f, 1} => %{level: :full}, {:g, 0} => %{level: :none}},
        custom_injections: [{3, :before, :ok}]
      })

    nif = Plan.to_nif(p)
    assert nif.default == {2, [:x], :all, [{3, :before, :ok}]}
    assert {:f, 1, {4, [:x], :all, [{3, :before, :ok}]}} in nif.functions
    assert {:g, 0, {0, [:x], :none, [{3, :before, :ok}]}} in nif.functions
    assert is_atom(nif.var_context)

    assert Map.keys(nif.templates) |> Enum.sort() ==
             [
               :entry,
               :error,
               :exit,
               :expr,
               :import_marker,
               :locals,
               :module,
               :state_after,
               :state_before,
               :tail,
               :tail_marker,
               :tail_require
             ]

    {:ok, fb} = Plan.normalize(:function_boundaries)
    assert Plan.to_nif(fb).default == {1, :none, :none, []}
  end

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
