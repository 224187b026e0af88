"""Tortoise migrations for dripper's models, made by `tortoise makemigrations` (see dripper.db)."""
