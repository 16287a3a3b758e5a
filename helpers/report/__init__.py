"""The report: its tables, rendered from the results file into report.md and README.md (text in, text out, no torch)."""
