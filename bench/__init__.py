"""End-to-end benchmark of the dispatcher against its own limit (``make bench``).

``bench.workload`` builds a seeded, pre-serialised event mix; ``bench.loadgen`` drives it open-loop
through the real broker and reads escalations back; ``bench.baselines`` measures a raw aiokafka and
a plain faust passthrough on the same broker; ``bench.stats`` holds the pure decisions
(percentiles, "is this rate sustainable"); ``bench.report`` writes JSON, Markdown and a PNG;
``bench.run`` orchestrates one run.
"""
