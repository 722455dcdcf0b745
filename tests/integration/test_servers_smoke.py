"""The session's real servers answer: create a collection, insert 3 rows, read them back."""

from __future__ import annotations

import uuid

import pytest
from pymilvus import MilvusClient

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


def _round_trip(uri: str) -> None:
    client = MilvusClient(uri=uri)
    name = f"smoke_{uuid.uuid4().hex[:12]}"
    try:
        client.create_collection(name, dimension=4, consistency_level="Strong")
        rows = [{"id": i, "vector": [0.1 * (i + 1)] * 4, "text": f"row {i}"} for i in range(3)]
        assert client.insert(name, rows)["insert_count"] == 3
        got = client.query(name, filter="id >= 0", output_fields=["id", "text"])
        assert sorted((row["id"], row["text"]) for row in got) == [
            (0, "row 0"), (1, "row 1"), (2, "row 2"),
        ]
        counted = client.query(name, filter="", output_fields=["count(*)"])
        assert counted[0]["count(*)"] == 3
    finally:
        client.drop_collection(name)
        client.close()


def test_lite_server_round_trip(lite_server_uri: str) -> None:
    _round_trip(lite_server_uri)


def test_milvus235_round_trip(milvus235_uri: str) -> None:
    _round_trip(milvus235_uri)
