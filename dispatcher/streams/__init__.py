"""faust wiring: topics to the pure core. Nothing else imports this package."""
