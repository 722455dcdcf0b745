"""Collection layouts for unit tests (importable as `layouts`: `tests/` is on sys.path)."""

from __future__ import annotations

from typing import Any

from langchain_milvus_ext._schema import CollectionLayout, layout_for


def planned(**overrides: Any) -> CollectionLayout:
    """A planned layout: pk, text, vector and a JSON `metadata` field, unless overridden."""
    options: dict[str, Any] = {
        "primary_field": "pk",
        "text_field": "text",
        "vector_field": "vector",
        "metadata_field": "metadata",
        "enable_dynamic_field": False,
        "auto_id": False,
        "index_params": None,
        "partition_key_field": None,
    }
    options.update(overrides)
    return layout_for(**options)
