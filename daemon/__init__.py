"""melgand daemon."""
