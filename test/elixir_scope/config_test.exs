defmodule ElixirScope.ConfigTest do
  use ExUnit.Case, async: true
  alias ElixirScope.Config

  test "fills defaults" do
    {:ok, c} = Config.validate([])
    assert c[:capture][:buffer_size] == 65_536
    assert c[:capture][:overflow] == :drop_newest
    assert "*password*" in c[:capture][:redact]
    assert "tokens" in c[:capture][:redact_allow]
    assert c[:storage][:segment_events] == 65_536
    assert c[:enabled] == true
  end

  test "explicit options override defaults, nested keys merge" do
    {:ok, c} = Config.validate(capture: [buffer_size: 1024], storage: [max_bytes: 1000])
    assert c[:capture][:buffer_size] == 1024
    assert c[:capture][:batch_size] == 10_000
    assert c[:storage][:max_bytes] == 1000
  end

  test "unknown keys are named" do
    assert {:error, msg} = Config.validate(capture: [bufer_size: 1024])
    assert msg =~ "capture.bufer_size"
    assert msg =~ ":buffer_size"
    assert {:error, msg} = Config.validate(nonsense: 1)
    assert msg =~ "nonsense"
  end

  test "wrong types say what was expected" do
    assert {:error, msg} = Config.validate(capture: [buffer_size: 1000])
    assert msg =~ "capture.buffer_size must be a power of two"
    assert {:error, msg} = Config.validate(capture: [overflow: :sometimes])
    assert msg =~ ":drop_newest, :overwrite_oldest"
    assert {:error, msg} = Config.validate(capture: [fuse: [max_drop_ratio: 3]])
    assert msg =~ "capture.fuse.max_drop_ratio"
    assert {:error, msg} = Config.validate(capture: :big)
    assert msg =~ "capture must be a keyword list"
    assert {:error, _} = Config.validate(:not_a_list)
  end

  test "cluster: nodes is nil (no cluster), :connected or a list of node names" do
    assert {:ok, c} = Config.validate([])
    assert c[:cluster][:nodes] == nil and c[:cluster][:clock_interval] == 5_000
    assert {:ok, c} = Config.validate(cluster: [nodes: :connected])
    assert c[:cluster][:nodes] == :connected
    assert {:ok, _} = Config.validate(cluster: [nodes: [:"a@127.0.0.1", :"b@127.0.0.1"], timeout: 500])
    assert {:error, msg} = Config.validate(cluster: [nodes: "a@127.0.0.1"])
    assert msg =~ "cluster.nodes must be nil, :connected or a non-empty list of node names"
    assert {:error, msg} = Config.validate(cluster: [nodes: []])
    assert msg =~ "cluster.nodes"
    assert {:error, msg} = Config.validate(cluster: [clock_interval: 0])
    assert msg =~ "cluster.clock_interval must be a positive integer"
  end

  test "ElixirScope.start/1 refuses invalid options with the message" do
    assert {:error, msg} = ElixirScope.start(storage: [max_bytes: -1])
    assert msg =~ "storage.max_bytes must be a non-negative integer"
    refute ElixirScope.running?()
  end
end
