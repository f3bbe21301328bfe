"""Outbound delivery (docs/outbound.md): agents' replies leave the server through the outbox.

``policy`` decides what an attempt's outcome means (pure), ``addresses`` keeps calls off private
networks, ``chat`` turns a queued message into a signed request and records what came of it, and
``worker`` runs attempts as rows fall due, with bounded concurrency per channel.
"""
