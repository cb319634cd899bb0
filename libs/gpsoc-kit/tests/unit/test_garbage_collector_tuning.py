"""A service process freezes what it set up and collects less often while it serves."""

from __future__ import annotations

import gc

from gpsoc_kit.runtime import GC_THRESHOLDS, tune_garbage_collector


def test_objects_alive_at_start_are_frozen_and_thresholds_raised():
    before = gc.get_threshold()
    set_up_before_serving = {"kept": ["for the life of the process"]}
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        # Frozen objects are in no generation: collections no longer walk them.
        assert all(
            obj is not set_up_before_serving
            for generation in range(3)
            for obj in gc.get_objects(generation)
        )
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
