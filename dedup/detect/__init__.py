"""The facades that wire the pipeline: Detector (one store) and ArchiveDetector (the archive)."""
