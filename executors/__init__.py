"""Jina executors and gateway: thin adapters from documents to the ``audiosearch`` core."""
# No "from __future__ import annotations" in executors/: Jina reads endpoint type hints at run time.
