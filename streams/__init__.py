"""Kafka in and out: the Faust apps and agents, the batch handler, the worker and miner runners,
the producer platform teams import, topics and metrics. Domain logic lives in processors/,
stores in stores/; this package never imports api/."""
