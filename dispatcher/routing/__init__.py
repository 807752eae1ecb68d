"""Pure roster-aware routing: who is competent, covers the citizen, on shift now, least loaded."""
