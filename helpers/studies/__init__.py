"""Studies: the registry of runs, the set-up every notebook shares, and one module per question beyond the course."""
