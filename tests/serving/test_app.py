"""The REST server (a subprocess on a loopback port) over the Cranfield demo indexes of the tiny Dream model."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import API_KEY, HITS, MAX_HITS, MAX_QUERY_CHARS

pytestmark = [pytest.mark.jvm, pytest.mark.slow]


@pytest.mark.parametrize("alias", ["dense", "multi", "impact", "hybrid", "hybrid_pyserini"])
def test_results_equal_the_search_cli_runs(rest_server, cranfield_demo, alias):
    assert sum(map(len, cranfield_demo.runs[alias].values())) >= len(cranfield_demo.topics)  # not vacuous
    for qid, text in cranfield_demo.topics.items():
        response = rest_server.get(f"/v1/{alias}/search", query=text, hits=HITS)
        assert response.status_code == 200, response.text
        served = [(c["docid"], c["score"]) for c in response.json()["candidates"]]
        expected = cranfield_demo.runs[alias].get(qid, [])
        assert [docid for docid, _ in served] == [docid for docid, _ in expected], (alias, qid)
        assert [score for _, score in served] == pytest.approx([score for _, score in expected], abs=1e-5)


def test_concurrent_requests_get_the_sequential_results(rest_server, cranfield_demo):
    """Many clients at once (queries batched together, locked searchers shared): nothing mixed up."""
    jobs = [(alias, qid, text) for alias in cranfield_demo.runs for qid, text in cranfield_demo.topics.items()]

    def ask(job):
        alias, _, text = job
        response = rest_server.get(f"/v1/{alias}/search", query=text, hits=HITS)
        assert response.status_code == 200, response.text
        return [(c["docid"], c["score"]) for c in response.json()["candidates"]]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, jobs * 2))
    for (alias, qid, _), served in zip(jobs * 2, answers):
        expected = cranfield_demo.runs[alias].get(qid, [])
        assert [d for d, _ in served] == [d for d, _ in expected], (alias, qid)
        assert [s for _, s in served] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_documents_come_from_the_base_index_or_are_null(rest_server, cranfield_demo):
    stored = {}
    for line in (cranfield_demo.work / "store-collection" / "docs.jsonl").read_text().splitlines():
        record = json.loads(line)
        stored[record["id"]] = record["contents"]
    dense = rest_server.get("/v1/dense/search", query="wing flutter", hits=3).json()["candidates"]
    assert len(dense) == 3 and all(c["doc"] == stored[c["docid"]] for c in dense)
    multi = rest_server.get("/v1/multi/search", query="wing flutter", hits=3).json()["candidates"]
    assert len(multi) == 3 and all(c["doc"] is None for c in multi)
    docid = dense[0]["docid"]
    fetched = rest_server.get(f"/v1/dense/doc/{docid}")
    assert fetched.status_code == 200 and fetched.json()["doc"] == stored[docid]
    no_store = rest_server.get(f"/v1/multi/doc/{docid}")
    assert no_store.status_code == 400 and "base_index" in no_store.json()["error"]


BAD_REQUESTS = [
    ("/v1/nosuchindex/search", {"query": "wing"}, 400, "Index not configured for this server: nosuchindex"),
    ("/v1/dense/search", {"query": ""}, 400, "Parameter 'query' is required"),
    ("/v1/dense/search", {"query": "   "}, 400, "Parameter 'query'"),
    ("/v1/dense/search", {}, 400, "Parameter 'query' is required"),
    ("/v1/dense/search", {"query": "w" * (MAX_QUERY_CHARS + 1)}, 400, f"at most {MAX_QUERY_CHARS}"),
    ("/v1/dense/search", {"query": "wing\x00flutter"}, 400, "control character U+0000"),
    ("/v1/dense/search", {"query": "wing", "hits": 0}, 400, "'hits' must be positive"),
    ("/v1/dense/search", {"query": "wing", "hits": -3}, 400, "'hits' must be positive"),
    ("/v1/dense/search", {"query": "wing", "hits": MAX_HITS + 1}, 400, f"between 1 and {MAX_HITS}"),
    ("/v1/dense/search", {"query": "wing", "hits": "ten"}, 400, "'hits' must be an integer"),
    ("/v1/dense/search", {"query": "wing", "parse": "maybe"}, 400, "'parse' must be 'true' or 'false'"),
    ("/v1/dense/search", {"query": "wing", "k1": "0.9", "b": "0.4"}, 400, "apply only to sparse"),
    ("/v1/dense/search", {"query": "wing", "k1": "x", "b": "0.4"}, 400, "'k1' must be a number"),
    ("/v1/dense/search", {"query": "wing", "max_doc_length": "-1"}, 400, "'max_doc_length' must be positive"),
    ("/v1/dense/doc/no-such-doc", {}, 404, "Document not found: no-such-doc"),
    ("/v1/nosuchindex/doc/1", {}, 400, "nosuchindex"),
]


def test_every_bad_request_gets_a_4xx_with_a_clear_message_and_the_server_still_answers(rest_server):
    for path, params, status, message in BAD_REQUESTS:
        response = rest_server.get(path, **params)
        assert response.status_code == status, (path, params, response.text)
        assert message in response.json()["error"], (path, params, response.json())
    assert rest_server.process.poll() is None
    after = rest_server.get("/v1/dense/search", query="wing flutter", hits=2)
    assert after.status_code == 200 and len(after.json()["candidates"]) == 2


def test_api_keys_are_required(rest_server):
    for key in (None, "", "wrong-key", API_KEY + "x"):
        refused = rest_server.get("/v1/dense/search", key=key, query="wing")
        assert refused.status_code == 401 and "requires an API key" in refused.json()["error"], key
    bearer = rest_server.get("/v1/dense/search", key=None, query="wing", hits=1)
    assert bearer.status_code == 401
    import requests

    ok = requests.get(
        rest_server.url + "/v1/dense/search",
        params={"query": "wing", "hits": 1},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert ok.status_code == 200 and len(ok.json()["candidates"]) == 1
    assert rest_server.get("/v1/dense/search", query="wing", hits=1).status_code == 200
