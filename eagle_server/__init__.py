"""eagle_server package."""
