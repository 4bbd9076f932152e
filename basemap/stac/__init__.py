"""STAC: scenes, search, radiometry (the DN offset rule) and the frozen manifest."""
