"""``dispatcher evaluate``: measure clinical effect on a simulated cohort, with ground truth.

Pure (no clock reads, no I/O): ``cohort`` generates events and labelled episodes from a seed,
``simulator`` replays events through the real pure core on a virtual clock (it mirrors the
streaming shell's orchestration in memory), ``staff`` answers pages, ``baseline`` is the
``news2_ge5`` comparator and ``scoring`` turns pages and episodes into the report. The thin
command line is ``dispatcher/cli/evaluate.py`` (docs/evaluation.md).
"""
