"""Wiring only: the Faust app factory, topics and agents. Domain logic lives in processors/."""
