"""prescaler controller package."""
