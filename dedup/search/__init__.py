"""Finding candidates: the vector index, the persistent store and the time-sharded archive."""
