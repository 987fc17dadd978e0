"""Serving a store: the shared detector, the HTTP service and the JSONL stream."""
