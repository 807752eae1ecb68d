"""Topic names.

All input topics are keyed by ``citizen_id`` and have the same partition count, so faust
co-partitions them: one worker owns every event of a citizen, in order.
"""

from __future__ import annotations

DISCHARGES = "hospital.discharges"
SENSOR_READINGS = "home.sensor-readings"
NURSE_OBSERVATIONS = "homecare.nurse-observations"
ESCALATIONS = "acute.escalations"
DEAD_LETTER = "dispatcher.dead-letter"

INPUT_TOPICS: tuple[str, ...] = (DISCHARGES, SENSOR_READINGS, NURSE_OBSERVATIONS)
OUTPUT_TOPICS: tuple[str, ...] = (ESCALATIONS, DEAD_LETTER)
ALL_TOPICS: tuple[str, ...] = INPUT_TOPICS + OUTPUT_TOPICS
