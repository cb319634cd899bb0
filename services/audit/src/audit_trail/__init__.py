"""openGPSoC audit store: every access to patient data, append-only and hash-chained."""
