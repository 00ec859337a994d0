"""The people's pages: views (views.py), their errors, rate limits and help resources."""
