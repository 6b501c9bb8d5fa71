"""StyleStream's command line (``stylestream``): nothing imports this package."""
