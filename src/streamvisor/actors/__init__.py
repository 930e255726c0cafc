"""The domain actors: streaming sessions, the background poller, the file actor, agents."""
