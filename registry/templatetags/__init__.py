"""Template filters of the people's pages."""
