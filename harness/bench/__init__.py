"""Performance harness: real-size random-weight models, closed-loop load, baselines, report (``loopline bench``)."""
