defmodule ElixirScope.CaptureCodecTest do
  @moduledoc false
  # The capture codec through the real NIF: every payload is valid external
  # term format whatever was captured and whatever the limits; funs, big
  # integers and bitstrings are bounded like everything else.
  use ElixirScope.ScopeCase, async: false
  import Bitwise

  alias ElixirScope.{Event, NIF, Redaction, Truncated}
  alias ElixirScope.Capture.InstrumentationRuntime
  alias ElixirScope.Test.{Gen, TermGen}

  # {max_depth, max_width, max_binary, max_bytes}: tiny budgets included (64 is the smallest the NIF takes)
  @limits [{1, 1, 0, 64}, {2, 2, 1, 64}, {3, 3, 4, 100}, {4, 5, 8, 200}, {8, 32, 256, 4096}, {50, 1000, 20_000, 4_000_000}]

  defp session({d, w, b, bytes}, redact? \\ true) do
    rules = Redaction.rules([])
    redact = if redact?, do: %{redact: rules.deny, redact_allow: rules.allow}, else: %{redact: []}
    NIF.session_new(Map.merge(%{ring_capacity: 1024, max_depth: d, max_width: w, max_binary: b, max_bytes: bytes}, redact))
  end

  defp truncated?(flags), do: band(flags, 1) != 0

  describe "property: every encoded payload is valid ETF" do
    test "generated values of every kind x several limits round-trip through :erlang.binary_to_term/1" do
      {values, _} = Gen.many(Gen.new(20_240_601), 500, &TermGen.term(&1, 5))

      for {d, w, b, bytes} = limits <- @limits, redact? <- [true, false] do
        s = session(limits, redact?)

        for v <- values do
          {bin, flags} = NIF.encode(s, v)
          decoded =
            try do
              :erlang.binary_to_term(bin)
            rescue
              e in ArgumentError ->
                flunk("limits #{inspect(limits)}: invalid ETF for #{inspect(v, limit: 20)}: #{Exception.message(e)}")
            end

          # what users see: markers expanded
          _ = Event.decode_payload(bin, truncated?(flags))
          # nothing cut or redacted: exactly the value
          if flags == 0, do: assert(decoded === v, "#{inspect(v, limit: 20)} came back as #{inspect(decoded, limit: 20)}")
          # bounded by the budget (soft: what was being written, plus one marker per open level)
          assert byte_size(bin) <= bytes + b + 80 * (d + 1) + 2048, "#{byte_size(bin)} bytes under #{inspect(limits)}"
          _ = w
        end
      end
    end

    test "every stored event decodes: the same values through the runtime, the store and a query" do
      start_scope!(capture: [max_depth: 3, max_width: 3, max_binary: 4, max_payload_bytes: 100])
      {values, _} = Gen.many(Gen.new(7), 300, &TermGen.term(&1, 4))
      for v <- values, do: InstrumentationRuntime.report_function_entry(PropMod, :f, [v], 1)
      events = ElixirScope.get_events(module: PropMod)
      assert is_list(events) and length(events) == 300
      assert Enum.all?(events, &is_list(&1.payload))
    end
  end

  describe "cost bounded by the limits" do
    setup do
      %{s: session({8, 32, 256, 4096})}
    end

    test "a 1M-element list keeps 32 elements and says …more", %{s: s} do
      {bin, 1} = NIF.encode(s, Enum.to_list(1..1_000_000))
      list = Event.decode_payload(bin, true)
      assert length(list) == 33
      assert %Truncated{kind: :list, omitted: :unknown} = List.last(list)
      assert inspect(List.last(list)) == "#Truncated<list, …more>"
      # a short overflow is still counted
      {bin, 1} = NIF.encode(s, Enum.to_list(1..40))
      assert %Truncated{kind: :list, omitted: 8} = bin |> Event.decode_payload(true) |> List.last()
    end

    test "a 1M-key map keeps 32 pairs and counts the rest; a 100 MB binary keeps max_binary bytes", %{s: s} do
      {bin, 1} = NIF.encode(s, Map.new(1..1_000_000, &{&1, &1}))
      map = Event.decode_payload(bin, true)
      assert map_size(map) == 33
      assert %Truncated{kind: :map, omitted: 999_968} = map[:"$es_truncated"]
      {bin, 1} = NIF.encode(s, :binary.copy("x", 100_000_000))
      assert byte_size(bin) < 400
    end
  end

  describe "funs, big integers and bitstrings are bounded and marked" do
    setup do
      start_scope!(capture: [max_binary: 64])
    end

    test "a closure is recorded without its environment; an external fun as &Mod.fun/arity" do
      big = :binary.copy("q", 10_000_000)
      secret = %{password: "pw-closure-secret"}
      closure = fn x -> {x, big, secret} end
      cid = InstrumentationRuntime.report_function_entry(FunMod, :f, [closure, &Enum.map/2, &:lists.reverse/1], 1)
      [call] = ElixirScope.get_events(call_id: cid)
      assert call.truncated?
      [c, e1, e2] = call.payload
      assert %Truncated{kind: :fun, omitted: :unknown, preview: {__MODULE__, _index, _uniq}} = c
      assert inspect(c) =~ ~r/^#Function<\d+\.\d+ in ElixirScope.CaptureCodecTest>$/
      assert inspect(e1) == "&Enum.map/2" and inspect(e2) == "&:lists.reverse/1"
      [{_, _, _, _, _, _, _, _, _, _, _, payload}] = NIF.query(ElixirScope.Capture.Session.info().session, %{call_id: cid})
      assert byte_size(payload) < 200
      refute payload =~ "pw-closure-secret"
    end

    test "big integers beyond max_binary bytes keep their top bytes and show their magnitude" do
      huge = 1 <<< 1_000_000
      cid = InstrumentationRuntime.report_function_entry(IntMod, :f, [huge, -(3 <<< 200), 1 <<< 100], 1)
      [call] = ElixirScope.get_events(call_id: cid)
      [h, small, fits] = call.payload
      assert %Truncated{kind: :integer, preview: top, omitted: omitted} = h
      assert byte_size(:binary.encode_unsigned(top)) == 64
      assert top <<< (8 * omitted) == huge
      assert inspect(h) == "#Truncated<integer ≈ 9.9007e+301029>"
      assert small == -(3 <<< 200) and fits == 1 <<< 100
    end

    test "bitstrings are cut to max_binary bytes; short ones are kept exactly" do
      long = <<:binary.copy(<<7>>, 1000)::binary, 5::3>>
      cid = InstrumentationRuntime.report_function_entry(BitMod, :f, [long, <<1::3>>, <<255, 7::5>>], 1)
      [call] = ElixirScope.get_events(call_id: cid)
      assert [%Truncated{kind: :binary, omitted: 937, preview: prefix}, <<1::3>>, <<255, 7::5>>] = call.payload
      assert prefix == :binary.copy(<<7>>, 64)
    end

    test "pids, references and ports are kept as they are" do
      ref = make_ref()
      port = hd(Port.list())
      cid = InstrumentationRuntime.report_function_entry(OpMod, :f, [self(), ref, port], 1)
      [call] = ElixirScope.get_events(call_id: cid)
      assert call.payload == [self(), ref, port]
      refute call.truncated?
    end

    # identifiers are written by the VM's own ETF writer (c_src/nif.c, op_external): every shape
    # must come back exactly, the longest (a 255-character node name of 4-byte characters) included
    test "remote, aliased and long-node identifiers are kept exactly" do
      long_node = String.to_atom(String.duplicate("𝄞", 250) <> "@host")
      ids =
        for node <- [:"other@host", long_node] do
          name = Atom.to_string(node)
          atom = <<118, byte_size(name)::16, name::binary>>
          [
            :erlang.binary_to_term(<<131, 88, atom::binary, 7::32, 3::32, 12_345::32>>),
            :erlang.binary_to_term(<<131, 120, atom::binary, 99::64, 4::32>>),
            :erlang.binary_to_term(<<131, 90, 5::16, atom::binary, 4::32, 1::32, 2::32, 3::32, 4::32, 5::32>>)
          ]
        end

      alias = :erlang.alias()
      args = [alias, {self(), [:alias | alias]} | List.flatten(ids)]
      cid = InstrumentationRuntime.report_function_entry(OpMod, :f, args, 1)
      [call] = ElixirScope.get_events(call_id: cid)
      assert call.payload === args
      assert :erlang.term_to_binary(call.payload) == :erlang.term_to_binary(args)
      refute call.truncated?
    end
  end

  # Small nested terms are written in one pass through the term layout verified at load
  # (c_src/term_codec.c, encode_fast), falling back to the walker wherever a limit, a redaction or
  # a marker applies: both must give what the walker alone gives.
  describe "nested small terms (the codec's one-pass path)" do
    defmodule Shape, do: defstruct(a: 1, b: nil)

    test "GenServer-shaped payloads and other small nested terms come back exactly" do
      s = session({8, 32, 256, 4096})
      ref = make_ref()
      wide = Map.new(1..32, &{&1, {&1, self()}})

      values = [
        [{:add, 1000}, {self(), [:alias | ref]}, 1000],
        {:reply, :ok, %{a: 1000, b: "x", c: [ref | self()]}},
        {{:add, 1000}, %{clause: :call, waited_us: nil}},
        {ElixirScope.CaptureCodecTest, :ask, [self(), 1000]},
        %Shape{b: {[], {}, %{}, <<>>}},
        wide,
        %{{self(), ref} => [1.5, -(1 <<< 70), :"a rather long atom of more than twenty-two bytes"]}
      ]

      for v <- values do
        assert {bin, 0} = NIF.encode(s, v)
        assert :erlang.binary_to_term(bin) === v
        assert :erlang.term_to_binary(:erlang.binary_to_term(bin)) == :erlang.term_to_binary(v)
      end

      # a hash map (more than 32 keys) and lists of bytes: exactly the value
      wider = session({8, 64, 256, 4096})

      for v <- [Map.new(1..33, &{&1, [&1]}), [{~c"abc", [1, 2 | 3]}]] do
        assert {bin, 0} = NIF.encode(wider, v)
        assert :erlang.binary_to_term(bin) === v
      end
    end

    test "limits cut at every level of a nested term" do
      s = session({3, 3, 4, 4096})
      pid = self()
      cases = [
        {[{pid, [[1]]}], [{pid, [%Truncated{kind: :depth, omitted: 1}]}]},
        {{pid, [1, 2, 3, 4]}, {pid, [1, 2, 3, %Truncated{kind: :list, omitted: 1}]}},
        {[%{a: 1, b: 2, c: 3, d: pid}], [:map]},
        {[{pid, "0123456789"}], [{pid, %Truncated{kind: :binary, omitted: 6, preview: "0123"}}]},
        {{pid, {1, 2, 3, 4}}, {pid, {1, 2, 3, %Truncated{kind: :tuple, omitted: 1}}}}
      ]

      for {v, want} <- cases do
        assert {bin, 1} = NIF.encode(s, v)
        got = Event.decode_payload(bin, true)

        case want do
          [:map] ->
            assert [%{"$es_truncated": %Truncated{kind: :map, omitted: 1}} = m] = got
            assert map_size(m) == 4

          _ -> assert got == want
        end
      end

      # the byte budget runs out inside a nested term: cut there, still valid
      small = session({8, 32, 256, 64})
      assert {bin, 1} = NIF.encode(small, [{:add, 1}, {pid, [:alias | make_ref()]}, Enum.to_list(1000..1010)])
      assert [_ | _] = Event.decode_payload(bin, true)
    end

    test "secrets nested anywhere are redacted, and never reach the payload" do
      s = session({8, 32, 256, 4096})
      pid = self()

      for {v, want} <- [
            {[{pid, %{password: "pw-nested-1"}}], [{pid, %{password: :"[REDACTED]"}}]},
            {{:ok, [{:api_key, "pw-nested-2"}, 1]}, {:ok, [{:api_key, :"[REDACTED]"}, 1]}},
            {%{user: %{"authorization" => "pw-nested-3"}}, %{user: %{"authorization" => :"[REDACTED]"}}}
          ] do
        assert {bin, 2} = NIF.encode(s, v)
        assert :erlang.binary_to_term(bin) == want
        refute bin =~ "pw-nested"
      end

      # the marker atom inside a map key: the key is wrapped, the value kept
      assert {bin, 1} = NIF.encode(s, %{{:"$es_truncated", 1} => pid})
      assert [^pid] = bin |> :erlang.binary_to_term() |> Map.values()
    end
  end
end
