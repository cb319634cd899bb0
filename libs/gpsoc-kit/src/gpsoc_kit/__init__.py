"""openGPSoC service chassis: what every service does the same way, and no domain logic."""
