"""Dagster resource for the embedding store (creative_dag/encoders/store.py): where encoders put
their output before a short pooled step copies it into the warehouse."""

from __future__ import annotations

import dagster as dg

from creative_dag.encoders.store import EmbeddingStore


class EmbeddingStoreResource(dg.ConfigurableResource):
    """uri: any fsspec URI (a local folder, `s3://bucket/prefix`, ...); default `<home>/embedding_store`.
    Remote schemes need their fsspec package (s3fs, gcsfs) installed where the encoders run."""

    uri: str

    def get(self) -> EmbeddingStore:
        return EmbeddingStore(self.uri)
