"""How a request reaches the API and an answer comes back: engines, pool, the send path."""
