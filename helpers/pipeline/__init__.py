"""The pipeline: the notebooks run headlessly with papermill, and rerun over seeds, judges and precisions."""
