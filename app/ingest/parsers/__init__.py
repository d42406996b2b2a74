"""One module per transcript format. Each exposes FORMAT, DESCRIPTION, detect(doc) and parse(doc)."""
