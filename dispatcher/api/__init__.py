"""The HTTP API for acute teams and integrations: cases, silences, roster (aiohttp).

``create_api`` builds the application; ``tokens`` manages the bearer tokens it accepts.
"""
