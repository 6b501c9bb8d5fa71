"""StyleStream: the CLI, settings, local dev services, producer and demo."""
