"""The learning core: world model, actor-critic in imagination, replay, selection."""
