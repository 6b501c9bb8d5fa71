"""``python -m stylestream.cli``: how child processes (workers, the API, the miner) start."""

from stylestream.cli import main

main()
