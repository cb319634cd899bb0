"""The patient index's domain: plain Python, no framework, no I/O."""
