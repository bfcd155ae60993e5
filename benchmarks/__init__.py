"""Performance benchmarks, run on a throwaway PostgreSQL server (``make bench``)."""
