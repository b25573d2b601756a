"""melgand model."""
