"""End-to-end compositions of the domains: the daily pipeline's task bodies (runner), the benchmark and the detector evaluation."""
