"""eagle_agent package."""
