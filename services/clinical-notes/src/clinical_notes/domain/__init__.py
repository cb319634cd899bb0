"""The clinical record's domain: plain Python, no framework, no I/O."""
