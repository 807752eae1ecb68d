"""Persistence: PostgreSQL (asyncpg) is the durable truth for decisions, context and outbox.

All SQL of the dispatcher lives in this package, one module per aggregate (``batches``,
``cases``, ``deliveries``, ``roster``, ``silences``, ``tokens``...; ``audit`` holds the
reconciler's read-only evidence). Outside ``store/`` only the composition roots import
``asyncpg``; everyone else gets a pool or connection from ``store.db``.

How transactions work (one pattern everywhere): the caller owns the transaction, the store
function owns the statement. A shell opens its unit of work with ``db.transaction(pool)`` (or on
a short-lived ``db.connection(dsn)``) and passes the connection to plain ``async def`` store
functions, which take typed arguments, return typed values and never begin or commit a
transaction themselves. A single statement that needs no transaction (a read, the delivery
claim) may be given the pool itself (``db.Executor``). The exceptions are the old
``PostgresRepository`` methods in ``batches``, which open one ``db.transaction`` per batch.

States, severities and other vocabulary words are query parameters (``contract.vocab``,
``store.deliveries.DeliveryState``), never literals inside SQL text.
"""
