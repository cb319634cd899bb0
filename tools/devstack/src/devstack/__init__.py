"""openGPSoC local development stack (see devstack.__main__ for the commands)."""
