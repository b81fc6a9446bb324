"""Reports: what people look at after scoring (comparison tables, plots, anomaly maps, detection
reports, annotated videos, events)."""
