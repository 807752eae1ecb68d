"""Cases: grouping escalations per citizen, acknowledgement deadlines, re-escalation."""
