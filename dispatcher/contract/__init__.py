"""The public contract: event models, the shared vocabulary, topic names and JSON Schemas.

Everything a publisher or a consumer of our topics needs to know lives here, and nothing here
does I/O, so the pure core can import it freely.
"""
