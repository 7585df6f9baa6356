"""The run report: an HTML page per designs run (page.py) with inline SVG charts (charts.py)."""
