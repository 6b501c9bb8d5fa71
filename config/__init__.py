"""Settings and assembly: the one place processors and stores are put together from
settings (the API, the workers and the CLI build from here)."""
