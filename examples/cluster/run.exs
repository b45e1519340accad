# `make demo-cluster`: the bank of examples/cluster/bank.ex spread over three local nodes started
# with OTP's :peer (the ledger on one, the risk scorer on another, the caller on a third), recorded
# as one cluster by ElixirScope.Cluster; prints the merged timeline with the cross-node messages,
# an :erpc call paired with its work on the risk node, and the crash, and saves _build/cluster.esrec (`mix scope.open _build/cluster.esrec` opens it
# alone, `mix scope.cinema _build/cluster.esrec` shows the lanes grouped by node).
alias ElixirScope.{Cluster, Query, Recording}
alias ElixirScope.Cluster.Local
alias ElixirScope.Query.Correlation

Logger.configure(level: :error)
bank = Path.expand("bank.ex", __DIR__)
out = Path.expand("../../_build/cluster.esrec", __DIR__)
:ok = Local.ensure_distributed(:cluster_demo)
modules = Local.compile_instrumented(bank, :full)
nodes = for role <- [:ledger, :risk, :caller], into: %{}, do: {role, elem(Local.start_peer(role), 2)}
:ok = Local.load(Map.values(nodes), modules)
IO.puts("==> three nodes: #{Enum.map_join(nodes, ", ", fn {role, n} -> "#{role} on #{n}" end)}")

{:ok, _} = Cluster.start(Map.values(nodes))
{:ok, _} = :erpc.call(nodes.ledger, ClusterDemo.Ledger, :start, [])
risk = :erpc.call(nodes.risk, ClusterDemo.Risk, :start, [])
balances = :erpc.call(nodes.caller, ClusterDemo.Caller, :run, [nodes.ledger, risk, [120, 40, 5_000, 60]])
audited = :erpc.call(nodes.caller, ClusterDemo.Caller, :audit, [nodes.ledger])
{:fee, fee} = :erpc.call(nodes.caller, ClusterDemo.Caller, :quote_fee, [nodes.risk, 250])
IO.puts("==> the caller's balances: #{inspect(balances)}; accounts audited: #{audited}; fee quoted over :erpc: #{fee}\n")

{:ok, rec} = Cluster.snapshot()
Query.Source.put_default(rec)
Enum.each(Cluster.summary(rec), &IO.puts/1)
IO.puts("\n==> the merged timeline (calls into the bank, messages, the crash)")
events = Query.events()
pids = events |> Enum.map(& &1.pid) |> Enum.uniq()
ElixirScope.IEx.timeline(pids)

cross = events |> Correlation.links() |> Enum.filter(&(node(&1.from.pid) != node(&1.to.pid)))
IO.puts("\n==> #{length(cross)} links across nodes")

for l <- cross do
  IO.puts("  ##{l.from.id} #{node(l.from.pid)} → ##{l.to.id} #{node(l.to.pid)}  #{l.type}  " <>
            ElixirScope.IEx.Format.describe(l.from))
end

crash = Enum.find(events, &(&1.kind == :exception))
IO.puts("\n==> the crash: #{node(crash.pid)} #{ElixirScope.IEx.Format.describe(crash)}")
{:ok, info} = Recording.save(out, :all, nodes: :all)
IO.puts("==> saved #{info.events} events of #{length(rec.meta.cluster.nodes)} nodes to #{Path.relative_to_cwd(info.path)}")
IO.puts("    open it alone: mix scope.open _build/cluster.esrec  |  mix scope.cinema _build/cluster.esrec")
