"""Turning articles into vectors: encoders, article pooling, the default model build, backends, centring, cache."""
