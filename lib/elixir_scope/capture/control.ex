defmodule ElixirScope.Capture.Control do
  @moduledoc """
  The capture switch's state, kept where no ElixirScope process owns it, so that
  a crash or restart of any of them leaves it as it was (a blown fuse or a
  `disable()` stays in force):

    * the mode word of a node-wide `:atomics` (created once, kept in
      `:persistent_term` under `ElixirScope.Capture.Switch`): `0` off, `1` on,
      `2` on except some modules, copied into the NIF's own word
      (`ElixirScope.NIF.set_switch_mode/1`), which the `:dynamic` shape of
      `ElixirScope.Capture.Switch` reads (on OTP 25 an `:atomics` read makes
      the NIF call after it ~120 ns slower; a NIF call does not). A switch is
      a memory write that takes effect at once, with no message to any process
      and no code loading;
    * the native session's enabled flag (`ElixirScope.NIF.set_enabled/2`), set
      first when switching off, so that producers already past `Switch.on?/1`
      record nothing more once `disable/1` returns;
    * the disabled modules and the fuse (`:persistent_term`, changed rarely).

  Changes are serialised by a lock word in the same `:atomics`; the callers do
  the writes themselves, so `enable/1` and `disable/1` never wait for a process
  to be scheduled.
  """

  import Bitwise

  alias ElixirScope.Capture.{Ingestor, Session, SwitchLoader}
  alias ElixirScope.NIF

  @ref_key ElixirScope.Capture.Switch
  @off_key {ElixirScope.Capture.Switch, :off}
  @fuse_key {__MODULE__, :fuse}
  @mode 1
  @lock 2
  @off_since 3

  @typedoc "A blown fuse: why, and when (wall clock, and the event clock in ns)."
  @type fuse :: nil | %{reason: String.t(), at: DateTime.t(), at_ns: non_neg_integer()}
  @type state :: %{enabled: boolean(), disabled_modules: [module()], fuse: fuse()}

  @doc "Creates the node-wide switch word (once per node; it is never removed)."
  @spec ensure_created() :: :atomics.atomics_ref()
  def ensure_created do
    case :persistent_term.get(@ref_key, nil) do
      nil ->
        ref = :atomics.new(3, signed: true)
        :persistent_term.put(@ref_key, ref)
        ref

      ref ->
        ref
    end
  end

  @doc """
  Sets the switch for a session being started. A new session starts `enabled`
  (no module off, no fuse); an adopted one keeps the switch as it was.
  """
  @spec start(reference(), boolean(), :new | :adopted) :: :ok
  def start(session, enabled, how) do
    with_lock(fn ref ->
      if how == :new do
        if :persistent_term.get(@off_key, %{}) != %{}, do: :persistent_term.put(@off_key, %{})
        if :persistent_term.get(@fuse_key, nil) != nil, do: :persistent_term.erase(@fuse_key)
        set_mode(ref, session, if(enabled, do: 1, else: 0))
      else
        set_mode(ref, session, :atomics.get(ref, @mode))
      end
    end)
  end

  @doc "Switches capture off for good (ElixirScope is stopping)."
  @spec stop(reference() | nil) :: :ok
  def stop(session) do
    if ref(), do: with_lock(fn ref -> set_mode(ref, session, 0) end)
    for key <- [@off_key, @fuse_key], :persistent_term.get(key, nil) != nil, do: :persistent_term.erase(key)
    :ok
  end

  @doc "Switches capture on everywhere (clearing the disabled modules and the fuse), or for some modules."
  @spec enable(:all | [module()]) :: :ok
  def enable(:all) do
    with_lock(fn ref ->
      if off_modules() != %{}, do: :persistent_term.put(@off_key, %{})
      if fuse(), do: :persistent_term.erase(@fuse_key)
      set_mode(ref, session(), 1)
    end)

    SwitchLoader.ensure_dynamic()
  end

  def enable(modules) when is_list(modules) do
    with_lock(fn ref ->
      off = Map.drop(off_modules(), modules)
      :persistent_term.put(@off_key, off)
      if :atomics.get(ref, @mode) != 0, do: set_mode(ref, session(), mode_for(off))
    end)
  end

  @doc "Switches capture off everywhere, or for some modules."
  @spec disable(:all | [module()]) :: :ok
  def disable(:all) do
    with_lock(fn ref -> set_mode(ref, session(), 0) end)
    SwitchLoader.changed()
  end


  def disable(modules) when is_list(modules) do
    with_lock(fn ref ->
      off = Map.merge(off_modules(), Map.new(modules, &{&1, true}))
      :persistent_term.put(@off_key, off)
      if :atomics.get(ref, @mode) != 0, do: set_mode(ref, session(), mode_for(off))
    end)
  end

  @doc "Blows the fuse: capture off, with the reason kept. Returns false when capture was already off."
  @spec blow_fuse(String.t()) :: boolean()
  def blow_fuse(reason) do
    blown =
      with_lock(fn ref ->
        if :atomics.get(ref, @mode) != 0 do
          set_mode(ref, session(), 0)
          :persistent_term.put(@fuse_key, %{reason: reason, at: DateTime.utc_now(), at_ns: Ingestor.now()})
          true
        else
          false
        end
      end)

    if blown, do: SwitchLoader.changed()
    blown
  end

  @doc "The switch: on or off, the modules that are off, the fuse."
  @spec state() :: state()
  def state do
    %{enabled: enabled?(), disabled_modules: off_modules() |> Map.keys() |> Enum.sort(), fuse: fuse()}
  end

  @doc "Whether capture is on (globally)."
  @spec enabled?() :: boolean()
  def enabled?, do: (ref = ref()) != nil and :atomics.get(ref, @mode) != 0

  @doc "Milliseconds since capture was last switched off (a large number if ElixirScope never ran), or nil when it is on."
  @spec off_for_ms() :: non_neg_integer() | nil
  def off_for_ms do
    case ref() do
      nil -> 1 <<< 40
      ref -> if :atomics.get(ref, @mode) == 0, do: System.monotonic_time(:millisecond) - :atomics.get(ref, @off_since)
    end
  end

  @doc """
  Runs `fun` under the switch lock if capture is still off (the switch loader
  uses it to load the constant `false` shape without racing an `enable/1`).
  Returns `fun`'s result, or `:on` when capture was switched on meanwhile.
  """
  @spec while_off((-> result)) :: result | :on when result: term()
  def while_off(fun) do
    with_lock(fn ref -> if :atomics.get(ref, @mode) == 0, do: fun.(), else: :on end)
  end

  defp ref, do: :persistent_term.get(@ref_key, nil)
  defp off_modules, do: :persistent_term.get(@off_key, %{})
  defp fuse, do: :persistent_term.get(@fuse_key, nil)
  defp session, do: (info = Session.info()) && info.session

  defp mode_for(off) when map_size(off) == 0, do: 1
  defp mode_for(_off), do: 2

  # Native flag first when switching off, last when switching on: in between,
  # producers are turned away by whichever of the two says "off".
  defp set_mode(ref, session, 0) do
    if session, do: Ingestor.set_enabled(session, false)
    if :atomics.get(ref, @mode) != 0, do: :atomics.put(ref, @off_since, System.monotonic_time(:millisecond))
    :atomics.put(ref, @mode, 0)
    NIF.set_switch_mode(0)
    :ok
  end

  defp set_mode(ref, session, mode) do
    :atomics.put(ref, @mode, mode)
    NIF.set_switch_mode(mode)
    if session, do: Ingestor.set_enabled(session, true)
    :ok
  end

  # A spin lock: critical sections are a few writes. A holder killed inside
  # one would leave it taken, so a waiter takes it over after a second.
  defp with_lock(fun) do
    ref = ensure_created()
    acquire(ref, System.monotonic_time(:millisecond) + 1_000)

    try do
      fun.(ref)
    after
      :atomics.put(ref, @lock, 0)
    end
  end

  defp acquire(ref, deadline) do
    case :atomics.compare_exchange(ref, @lock, 0, 1) do
      :ok ->
        :ok

      _ ->
        if System.monotonic_time(:millisecond) > deadline do
          :ok
        else
          :erlang.yield()
          acquire(ref, deadline)
        end
    end
  end
end
