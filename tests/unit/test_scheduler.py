"""Placement: properties over random clusters (hypothesis), the indexed Cluster against place(), each refusal."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seabox.model.sizes import SIZES, GiB, MiB
from seabox.scheduler.cluster import Cluster
from seabox.scheduler.place import Placement, Refusal, place
from seabox.scheduler.snapshot import NodeView, PlacementRequest

NAMES = [f"n{i}" for i in range(8)]
TENANTS = ["a", "b", "c"]


@st.composite
def node_views(draw: st.DrawFn, name: str) -> NodeView:
    total = draw(st.integers(0, 32)) * 512 * MiB
    allocated = draw(st.integers(0, 34)) * 256 * MiB  # sometimes above total: a node that shrank
    tenants = draw(st.dictionaries(st.sampled_from(TENANTS), st.integers(0, 4)))
    state = draw(st.sampled_from(["ready", "ready", "ready", "down", "cordoned", "draining"]))
    return NodeView(name, state, total, draw(st.sampled_from([1, 2, 4, 8])), allocated, sum(tenants.values()), tenants)


@st.composite
def clusters(draw: st.DrawFn) -> list[NodeView]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    return [draw(node_views(name)) for name in names]


def request_for(tenant: str, size: str, **kw: object) -> PlacementRequest:
    s = SIZES[size]
    return PlacementRequest(tenant, size, s.memory_bytes, s.cpus, **kw)  # type: ignore[arg-type]


@st.composite
def requests(draw: st.DrawFn, pinned: bool | None = None) -> PlacementRequest:
    required = draw(st.sampled_from([*NAMES, "elsewhere"])) if (pinned or pinned is None and draw(st.booleans())) \
        else None
    avoid = frozenset(draw(st.lists(st.sampled_from(NAMES), max_size=3)))
    return request_for(draw(st.sampled_from(TENANTS)), draw(st.sampled_from(list(SIZES))),
                       required_node=required, avoid_nodes=avoid)


def fits(n: NodeView, r: PlacementRequest) -> bool:
    return n.state == "ready" and n.memory_free >= r.memory_bytes and n.cpus >= r.cpus and n.name not in r.avoid_nodes


def by_name(nodes: list[NodeView]) -> dict[str, NodeView]:
    return {n.name: n for n in nodes}


@given(clusters(), requests())
def test_a_placement_is_on_a_ready_node_with_the_memory_free_and_not_avoided(nodes: list[NodeView],
                                                                            r: PlacementRequest) -> None:
    result = place(nodes, r)
    if isinstance(result, Placement):
        chosen = by_name(nodes)[result.node]
        assert chosen.state == "ready"
        assert chosen.memory_allocated + r.memory_bytes <= chosen.memory_total
        assert chosen.cpus >= r.cpus and chosen.name not in r.avoid_nodes


@given(clusters(), requests(pinned=True))
def test_a_required_node_is_honoured_or_the_request_refused(nodes: list[NodeView], r: PlacementRequest) -> None:
    result = place(nodes, r)
    node = by_name(nodes).get(r.required_node or "")
    if node is not None and fits(node, r):
        assert result == Placement(node.name)
    else:
        assert isinstance(result, Refusal) and f"node {r.required_node} " in result.reason


@given(clusters(), requests(pinned=False))
def test_spread_first_then_best_fit_then_name_and_refused_only_when_nothing_fits(nodes: list[NodeView],
                                                                                 r: PlacementRequest) -> None:
    candidates = [n for n in nodes if fits(n, r)]
    result = place(nodes, r)
    if not candidates:
        assert isinstance(result, Refusal)
        return
    best = min(candidates, key=lambda n: (n.tenant_containers.get(r.tenant_id, 0), n.memory_free, n.name))
    assert result == Placement(best.name)


@given(st.data(), clusters(), requests())
def test_the_same_snapshot_in_any_order_gives_the_same_answer(data: st.DataObject, nodes: list[NodeView],
                                                             r: PlacementRequest) -> None:
    shuffled = data.draw(st.permutations(nodes))
    assert place(shuffled, r) == place(nodes, r) == place(list(nodes), r)
    assert Cluster(shuffled).place(r) == place(nodes, r)


@given(st.integers(1, 40), st.sampled_from(["s1", "s4", "m1"]), st.integers(0, 3))
def test_a_tenants_containers_on_as_many_equal_nodes_land_on_distinct_nodes(count: int, size: str,
                                                                           others: int) -> None:
    # Equal free memory everywhere; another tenant's containers hold the memory in use on the first node.
    nodes = [NodeView(f"n{i:02}", "ready", 64 * GiB, 8, others * GiB, 0, {}) for i in range(count)]
    nodes[0] = replace(nodes[0], containers=others, tenant_containers={"x": others})
    cluster, snapshot, chosen = Cluster(nodes), list(nodes), []
    r = request_for("a", size)
    for _ in range(count):
        result = place(snapshot, r)
        assert isinstance(result, Placement) and cluster.place(r) == result
        cluster.commit(result.node, r)
        snapshot = cluster.views()
        chosen.append(result.node)
    assert sorted(chosen) == [n.name for n in nodes]


@st.composite
def crowded(draw: st.DrawFn) -> list[NodeView]:
    """A few small ready nodes, so that one tenant soon holds several containers on every one of them."""
    count = draw(st.integers(1, 4))
    return [NodeView(f"n{i}", "ready", draw(st.sampled_from([2, 3, 4])) * GiB, 4, 0, 0, {}) for i in range(count)]


def small_requests() -> st.SearchStrategy[PlacementRequest]:
    return st.builds(request_for, st.sampled_from(TENANTS[:2]), st.sampled_from(["s3", "s4", "m1"]))


def operations(reqs: st.SearchStrategy[PlacementRequest]) -> st.SearchStrategy[list[tuple[str, PlacementRequest]]]:
    return st.lists(st.tuples(st.sampled_from(["place", "place", "release"]), reqs), max_size=60)


@given(st.one_of(st.tuples(clusters(), operations(requests())), st.tuples(crowded(), operations(small_requests()))))
def test_the_indexed_cluster_answers_as_place_does_through_commits_and_releases(
        case: tuple[list[NodeView], list[tuple[str, PlacementRequest]]]) -> None:
    nodes, ops = case
    cluster = Cluster(nodes)
    placed: list[tuple[str, PlacementRequest]] = []
    for op, r in ops:
        if op == "release" and placed:
            cluster.release(*placed.pop(len(placed) // 2))
            continue
        result = cluster.place(r)
        assert result == place(cluster.views(), r)
        if isinstance(result, Placement):
            cluster.commit(result.node, r)
            placed.append((result.node, r))
    views = by_name(cluster.views())
    for n in nodes:  # what commits added is exactly what is still placed
        mine = [r for node, r in placed if node == n.name]
        assert views[n.name].memory_allocated == n.memory_allocated + sum(r.memory_bytes for r in mine)
        assert views[n.name].containers == n.containers + len(mine)


def test_spread_wins_over_packing_and_packing_picks_the_tightest_fit() -> None:
    nodes = [
        NodeView("n1", "ready", 8 * GiB, 4, 7 * GiB, 3, {"a": 1, "b": 2}),  # 1 GiB free, holds one of a's
        NodeView("n2", "ready", 8 * GiB, 4, 6 * GiB, 2, {"b": 2}),  # 2 GiB free
        NodeView("n3", "ready", 8 * GiB, 4, 4 * GiB, 1, {"b": 1}),  # 4 GiB free
    ]
    assert place(nodes, request_for("a", "s4")) == Placement("n2")  # n1 fits tighter but holds one of a's
    assert place(nodes, request_for("b", "s4")) == Placement("n3")  # b: n3 holds the fewest of b's
    assert place(nodes, request_for("c", "s4")) == Placement("n1")  # c is on none: the tightest fit
    assert place(nodes, request_for("c", "m2")) == Placement("n2")
    tie = [replace(n, name=name, memory_allocated=0, tenant_containers={}) for n, name in zip(nodes, ["z", "y", "x"])]
    assert place(tie, request_for("a", "s1")) == Placement("x")


def test_commit_and_release_refuse_what_did_not_happen() -> None:
    cluster = Cluster([NodeView("n1", "ready", 1 * GiB, 2, 768 * MiB, 1, {"a": 1})])
    with pytest.raises(ValueError, match="node n1 has 256 MiB free, not the 512 MiB of size s4"):
        cluster.commit("n1", request_for("a", "s4"))
    with pytest.raises(ValueError, match="holds no container of size s1 of tenant b"):
        cluster.release("n1", request_for("b", "s1"))
    with pytest.raises(ValueError, match="node n9 is not in the cluster"):
        cluster.commit("n9", request_for("a", "s1"))
    with pytest.raises(ValueError, match="node n1 appears twice"):
        Cluster([*cluster.views(), *cluster.views()])


NODES = [
    NodeView("n1", "ready", 4 * GiB, 2, 2560 * MiB, 2, {"a": 2}),  # 1.5 GiB free
    NodeView("n2", "cordoned", 32 * GiB, 8, 0, 0, {}),
    NodeView("n3", "down", 32 * GiB, 8, 0, 0, {}),
    NodeView("n4", "ready", 4 * GiB, 2, 3 * GiB, 1, {"b": 1}),  # 1 GiB free
]


@pytest.mark.parametrize(("nodes", "request_", "reason"), [
    (NODES, request_for("a", "m3"), "no node has 4 GiB free for size m3; largest free: 1.5 GiB"),
    (NODES, request_for("a", "l1"), "no node has 4 CPUs for size l1; most CPUs: 2"),
    ([], request_for("a", "s1"), "no node is ready (none has joined)"),
    (NODES[1:3], request_for("a", "s1"), "no node is ready (1 down, 1 cordoned)"),
    (NODES, request_for("a", "s1", avoid_nodes=frozenset({"n1", "n4"})),
     "no node is ready except n1, n4, which this placement avoids"),
    (NODES, request_for("a", "s1", required_node="n2", pinned_by="volume data"),
     "node n2 (which holds volume data) is cordoned"),
    (NODES, request_for("a", "s1", required_node="n3", pinned_by="volume data"),
     "node n3 (which holds volume data) is down"),
    (NODES, request_for("a", "s1", required_node="n9", pinned_by="volume data"),
     "node n9 (which holds volume data) is not in the cluster"),
    (NODES, request_for("a", "s1", required_node="n1", avoid_nodes=frozenset({"n1"})),
     "node n1 (to which this container is pinned) is excluded from this placement"),
    (NODES, request_for("a", "m2", required_node="n1", pinned_by="volume data"),
     "node n1 (which holds volume data) has 1.5 GiB free; size m2 needs 2 GiB"),
    (NODES, request_for("a", "l1", required_node="n4", pinned_by="image app:1"),
     "node n4 (which holds image app:1) has 2 CPUs; size l1 needs 4 CPUs"),
])
def test_each_refusal_says_why(nodes: list[NodeView], request_: PlacementRequest, reason: str) -> None:
    assert place(nodes, request_) == Refusal(reason)
    assert Cluster(nodes).place(request_) == Refusal(reason)


def test_a_draining_node_takes_nothing_new_but_its_pinned_containers_say_so() -> None:
    nodes = [replace(NODES[0], state="draining"), NODES[3]]
    assert place(nodes, request_for("a", "s1")) == Placement("n4")
    assert place(nodes, request_for("a", "s1", required_node="n1", pinned_by="volume data")) == Refusal(
        "node n1 (which holds volume data) is draining")


def test_releasing_on_a_draining_node_frees_its_memory_but_it_still_takes_nothing() -> None:
    cluster = Cluster([NodeView("n1", "draining", 4 * GiB, 2, 3 * GiB, 2, {"a": 2}), NODES[3]])
    cluster.release("n1", request_for("a", "m1"))
    n1 = by_name(cluster.views())["n1"]
    assert (n1.memory_allocated, n1.containers, dict(n1.tenant_containers)) == (2 * GiB, 1, {"a": 1})
    assert cluster.place(request_for("a", "m1")) == Placement("n4")
    assert cluster.place(request_for("a", "m2")) == Refusal("no node has 2 GiB free for size m2; largest free: 1 GiB")
