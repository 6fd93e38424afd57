"""Reports: the versioned schema (`schema`), Markdown/JSON output (`render`) and the regression gate (`compare`)."""
