"""melgand trainer."""
