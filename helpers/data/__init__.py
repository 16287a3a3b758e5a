"""Data: the course-format QuickDraw folder (loading, validation, splits, synthetic drawings) and its download."""
