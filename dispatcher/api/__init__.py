"""The HTTP API for acute teams and integrations: cases, silences, roster (aiohttp).

``app.create_api`` builds the application (routes and middlewares), one module per resource
holds its handlers, ``auth`` the bearer tokens it accepts and ``server.build_api`` the process.
"""
