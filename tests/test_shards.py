"""End to end: an indexer split into 2 shards answers exactly as one indexer does."""

from collections.abc import Iterator

import pytest

from tests.conftest import Server, start_server, toy_clips

pytestmark = pytest.mark.slow

CLIPS = [str(p) for p in toy_clips()[:14]]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """A flow with one indexer and one with two shards, both holding the same clips."""
    one = start_server(tmp_path_factory.mktemp("one") / "workspace", "--encoder", "sfx",
                       timeout=300)  # fmt: skip
    try:
        two = start_server(tmp_path_factory.mktemp("two") / "workspace", "--encoder", "sfx",
                           "--shards", "2", timeout=300)  # fmt: skip
    except BaseException:
        one.stop()
        raise
    try:
        for server in (one, two):
            added = server.post("index", [{"uri": uri} for uri in CLIPS])
            assert [d["status"] for d in added] == ["added"] * len(CLIPS)
        yield one, two
    finally:
        one.stop()
        two.stop()


def answers(docs: list[dict]) -> list[list[tuple[str, float, float, float]]]:
    """Each query's matches as (uri, score, start, end); clip ids differ between layouts."""
    return [[(m["uri"], m["score"], m["start"], m["end"]) for m in d["matches"]] for d in docs]


def same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert [(uri, start, end) for uri, _, start, end in x] == [
            (uri, start, end) for uri, _, start, end in y
        ]
        assert [m[1] for m in x] == pytest.approx([m[1] for m in y], abs=1e-5)


def test_two_shards_store_the_clips_between_them(servers):
    _, two = servers
    [stats] = two.post("stats", [])
    per_shard = stats["stats"]["per_shard"]
    assert [s["shard"] for s in per_shard] == [0, 1]
    assert all(s["clips"] > 0 for s in per_shard)
    assert stats["stats"]["clips"] == sum(s["clips"] for s in per_shard) == len(CLIPS)
    ids = [d["clip_id"] for d in two.post("list", [], limit=100)]
    assert len(set(ids)) == len(CLIPS) and {i % 2 for i in ids} == {0, 1}


def test_two_shards_search_list_and_count_like_one(servers):
    one, two = servers
    queries = [{"uri": uri} for uri in CLIPS[::3]]
    # Shards search without query expansion (each would expand with its own nearest chunk).
    plain = answers(one.post("search", queries, limit=8, query_expansion=False))
    assert plain != answers(one.post("search", queries, limit=8))  # one index expands by default
    same(plain, answers(two.post("search", queries, limit=8)))
    [refused] = two.post("search", queries[:1], query_expansion=True)
    assert refused["status"] == "error"
    assert "query_expansion=true: needs a single indexer shard, this flow has 2" in refused["error"]
    filtered = {"limit": 5, "max_duration": 5.0, "path_glob": "*/toy-data/[a-m]*",
                "query_expansion": False}  # fmt: skip
    same(answers(one.post("search", queries, **filtered)),
         answers(two.post("search", queries, **filtered)))  # fmt: skip

    def like(server: Server, uri: str) -> list[dict]:
        [clip] = server.post("clips", [{"uri": uri}])
        return server.post("search", [{"clip_id": clip["clip_id"]}], limit=6, query_expansion=False)

    for uri in CLIPS[:4]:  # more like a clip, wherever its shard is
        same(answers(like(one, uri)), answers(like(two, uri)))

    [stats_one], [stats_two] = one.post("stats", []), two.post("stats", [])
    for key in ("clips", "chunks", "dim", "encoder"):
        assert stats_one["stats"][key] == stats_two["stats"][key]
    listed = two.post("list", [], limit=100)
    assert {d["uri"] for d in listed} == {d["uri"] for d in one.post("list", [], limit=100)}
    pages = [d for offset in range(0, 14, 4) for d in two.post("list", [], offset=offset, limit=4)]
    assert [d["clip_id"] for d in pages] == sorted(d["clip_id"] for d in listed)


def test_two_shards_describe_and_delete_like_one(servers):
    one, two = servers
    for server in (one, two):
        docs = server.post("delete", [{"uri": CLIPS[1]}, {"uri": CLIPS[2]}, {"clip_id": 99999}])
        assert [d["status"] for d in docs] == ["deleted", "deleted", "error"]
        assert docs[2]["error"] == "clip_id=99999: not in the index; list the library with /list"
        [gone] = server.post("clips", [{"uri": CLIPS[1]}])
        assert gone["status"] == "error" and "not in the index" in gone["error"]
    queries = [{"uri": uri} for uri in CLIPS[:3]]
    plain = {"limit": 20, "query_expansion": False}
    same(
        answers(one.post("search", queries, **plain)), answers(two.post("search", queries, **plain))
    )
    assert two.post("stats", [])[0]["stats"]["clips"] == len(CLIPS) - 2
    again = two.post("index", [{"uri": uri} for uri in CLIPS])
    assert sorted(d["status"] for d in again) == ["added"] * 2 + ["unchanged"] * (len(CLIPS) - 2)
