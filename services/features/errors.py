"""The one exception the feature layer raises for store trouble."""

from __future__ import annotations


class FeatureStoreError(RuntimeError):
    """The online feature store could not be reached or used; the message says what to do."""
