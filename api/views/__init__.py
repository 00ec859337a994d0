"""The partner API's views: one thin class per operation, by what a partner does."""
