"""OpenAI's admin usage and costs API: the usage pages, the costs pages, and what both
share (common: parameters, pages, errors)."""
