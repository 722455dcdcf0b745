"""langchain-milvus-ext: a correct, loop-safe, fast Milvus vector store for LangChain.

Example:
    ```python
    from langchain_milvus_ext import Milvus  # the same class as MilvusVectorStore
    ```
"""

from importlib import metadata

from langchain_milvus_ext._batching import Batching
from langchain_milvus_ext._coalescer import CoalescerLimits
from langchain_milvus_ext._errors import MilvusConnectionError, StoreClosedError, WriteError
from langchain_milvus_ext._retry import RetryPolicy
from langchain_milvus_ext.ingest import IngestResult, aingest_documents, ingest_documents
from langchain_milvus_ext.retriever import MilvusRetriever
from langchain_milvus_ext.vectorstore import Milvus, MilvusVectorStore, TenantView

try:
    __version__ = metadata.version("langchain-milvus-ext")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Batching",
    "CoalescerLimits",
    "IngestResult",
    "Milvus",
    "MilvusConnectionError",
    "MilvusRetriever",
    "MilvusVectorStore",
    "RetryPolicy",
    "StoreClosedError",
    "TenantView",
    "WriteError",
    "__version__",
    "aingest_documents",
    "ingest_documents",
]
