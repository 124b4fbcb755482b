"""Algorithmic tasks the course trains small transformers on, and the measurements that go with them."""
