"""The CLI's read commands: the front as a table, choosing, exporting, the report, plots, ui."""
