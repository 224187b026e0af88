"""Receiving: what learners send back, stored raw first, then classified and filed."""
