"""Model export and training. Needs the ``train`` extra (torch); serving never imports it."""
