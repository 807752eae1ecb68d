"""Persistence: PostgreSQL (asyncpg) is the durable truth for decisions, context and outbox."""
