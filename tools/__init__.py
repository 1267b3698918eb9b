"""The parts of bench.py: settings and measuring helpers, the comparison with TRL, the GPU plan and check, profiling."""
